"""The report of a sweep (python -m jaxtl.report runs/NAME) or of one run folder
(python -m jaxtl.report runs/NAME/RUN, or any run's --workdir).

Markdown (report.md with its PNG figures beside it) and one self-contained HTML page
(report.html, figures embedded), written to the folder's report/ unless --out says otherwise.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

from jaxtl.core.errors import UserError
from jaxtl.report import run
from jaxtl.report.build import build
from jaxtl.report.study_tests import SAMPLES
from jaxtl.sweep import table
from jaxtl.workdir import files as rundir

REPORT_DIR = "report"


def render(sweep_dir: str | pathlib.Path, out_dir: str | pathlib.Path | None = None,
           chosen: Sequence[str] = (), comparison_samples: int = SAMPLES,
           ) -> dict[str, pathlib.Path]:
    """Writes the report of the sweep in `sweep_dir`; returns the paths of report.md/.html.
    `comparison_samples`: patient resamples of the paired comparisons.

    Reads results.jsonl; where it is missing but run folders exist, writes it first.
    """
    sweep_dir = pathlib.Path(sweep_dir)
    if not (sweep_dir / table.RESULTS_JSONL).is_file():
        table.write(sweep_dir)
    rows = table.read(sweep_dir)
    if not rows:
        raise UserError(f"{sweep_dir} holds no runs of a sweep (no {table.RESULTS_JSONL} rows, "
                        f"no */sweep_run.json): run python -m jaxtl.sweep --workdir {sweep_dir} "
                        f"first")
    if unknown := sorted(set(chosen) - {str(row["run"]) for row in rows}):
        raise UserError(f"--runs {', '.join(unknown)}: no run of {sweep_dir} has that name; "
                        f"name run folders as listed in {sweep_dir / table.RESULTS_JSONL}")
    out = pathlib.Path(out_dir) if out_dir is not None else sweep_dir / REPORT_DIR
    return build(sweep_dir, rows, chosen, comparison_samples).write(out)


def render_run(run_dir: str | pathlib.Path, out_dir: str | pathlib.Path | None = None
               ) -> dict[str, pathlib.Path]:
    """Writes the report of the finished run in `run_dir`; returns the paths of report.md/.html."""
    run_dir = pathlib.Path(run_dir)
    results = rundir.read_results(run_dir)
    if results is None:
        raise UserError(f"the run in {run_dir} has not finished (no {rundir.RESULTS_FILE}): "
                        f"resume it with the same python -m jaxtl.main command first")
    out = pathlib.Path(out_dir) if out_dir is not None else run_dir / REPORT_DIR
    return run.build_run(run_dir, results).write(out)


__all__ = ["REPORT_DIR", "render", "render_run"]
