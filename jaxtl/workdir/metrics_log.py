"""What a run writes for people and tools: metrics.jsonl, TensorBoard events, log lines.

Only the first host writes. Every record and log line of a demo run is marked DEMO.
"""

from __future__ import annotations

import json
import pathlib
import re
from collections.abc import Mapping
from typing import Any

from absl import logging
from tensorboardX import SummaryWriter

from jaxtl.core import atomic
from jaxtl.workdir.files import METRICS_FILE, TENSORBOARD_DIR


class RunLog:
    def __init__(self, workdir: pathlib.Path, *, demo: bool, enabled: bool):
        self.demo = demo
        self.enabled = enabled
        self.path = workdir / METRICS_FILE
        self._writer = SummaryWriter(str(workdir / TENSORBOARD_DIR)) if enabled else None
        if enabled and demo:
            self._writer.add_text("run", "DEMO run on synthetic data", 0)

    def info(self, message: str, *args: Any) -> None:
        if self.enabled:
            logging.info(("DEMO | " if self.demo else "") + message, *args)

    def truncate_after(self, step: int) -> None:
        """On resume: forget records newer than the restored checkpoint (they are redone)."""
        if not self.enabled or not self.path.exists():
            return
        kept = [line for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line)["step"] <= step]
        atomic.write_text(self.path, "".join(line + "\n" for line in kept))

    def write(self, step: int, split: str, values: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"step": step, "split": split, "demo": self.demo, **values}
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self._writer.add_scalar(_tag(split, key), value, step)
            elif isinstance(value, Mapping):
                for sub_key, sub_value in value.items():
                    if isinstance(sub_value, (int, float)):
                        self._writer.add_scalar(_tag(split, key, sub_key), sub_value, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _tag(*parts: str) -> str:
    r"""TensorBoard tag: path parts joined by '/', other characters outside [\w.-] as '_'."""
    return "/".join(re.sub(r"[^\w.-]", "_", str(part)) for part in parts)
