"""python -m jaxtl.report runs/NAME [--out DIR] [--runs RUN --runs RUN ...] [--comparison_samples N]
   python -m jaxtl.report RUN_DIR [--out DIR]

Given one run's folder (its --workdir, finished: results.json): report.md and report.html of
that run (jaxtl/report/run.py): headline metrics with intervals, learning curves, the confusion
matrix or ROC/PR curves (per label for multi-label tasks), reliability, per-class table.

Given a sweep's folder: writes report.md (with PNG figures beside it) and a self-contained
report.html from the sweep's results.jsonl and run folders: metric against training images
per class per pretraining source (overall, per model, per optimizer; means and spread over
seeds), paired comparisons of the
sources at each size (Holm-corrected), ROC and precision-recall curves, reliability diagrams,
operating points, the confusion matrix, learning curves and tables with confidence intervals.
"""

from __future__ import annotations

import pathlib

from absl import flags

from jaxtl.commands import cli
from jaxtl.core.errors import UserError


def define_flags() -> cli.Options:
    return {
        "out": flags.DEFINE_string("out", None, "Output folder (default: FOLDER/report)."),
        "runs": flags.DEFINE_multi_string(
            "runs", [], "A run whose ROC/PR and learning curves to draw (its folder name; "
            "repeat the flag for several: sweep folder names hold commas)."),
        "comparison_samples": flags.DEFINE_integer(
            "comparison_samples", None, "Patient resamples of the paired comparisons "
            "(default: jaxtl.report.study_tests.SAMPLES)."),
    }


def check_arguments(argv: list[str]) -> None:
    if len(argv) != 2:
        raise UserError("pass the --workdir of a sweep or of a run, e.g. python -m jaxtl.report "
                        "runs/demo")


def check(argv: list[str], options: cli.Options) -> str:
    """--check: one folder given (a sweep's or a run's); it is read when the command runs."""
    del options
    check_arguments(argv)
    return f"the command line parses; reports on {argv[1]} (read when the command runs)"


def main(argv: list[str], options: cli.Options) -> None:
    check_arguments(argv)
    folder = pathlib.Path(argv[1])
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; pass the --workdir of a sweep "
                        f"(python -m jaxtl.sweep --config ... --workdir {folder}) or of a run")
    from jaxtl.report import render, render_run, run

    if run.is_run(folder):
        if options["runs"].value:
            raise UserError("--runs names runs of a sweep; a run's report draws its own curves: "
                            "leave --runs out")
        paths = render_run(folder, options["out"].value)
    else:
        samples = options["comparison_samples"].value
        paths = render(folder, options["out"].value, options["runs"].value,
                       **({} if samples is None else {"comparison_samples": samples}))
    print(f"report: {paths['markdown']}\n        {paths['html']}")


if __name__ == "__main__":
    cli.run(main, define_flags, positional="FOLDER", check=check)
