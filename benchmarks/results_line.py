"""One home for how a benchmark reports: the result printed, and appended as one JSON line to
the results file named by its --out (benchmarks/results/*.jsonl). Plain Python, so the scripts
that run in a torch-only environment (gpu_timm.py) import it too."""

from __future__ import annotations

import json
from typing import Any


def report(result: dict[str, Any], out: str | None, indent: int | None = None) -> None:
    print(json.dumps(result, indent=indent), flush=True)
    if out:
        with open(out, "a") as results:
            results.write(json.dumps(result) + "\n")
