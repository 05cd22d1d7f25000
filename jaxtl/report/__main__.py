"""python -m jaxtl.report runs/NAME [--out DIR] [--runs RUN --runs RUN ...] [--comparison_samples N]

Writes report.md (with PNG figures beside it) and a self-contained report.html from the sweep's
results.jsonl and run folders: metric against training images per class per pretraining source
(overall, per model, per optimizer; means and spread over seeds), paired comparisons of the
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
        "out": flags.DEFINE_string("out", None, "Output folder (default: SWEEP_DIR/report)."),
        "runs": flags.DEFINE_multi_string(
            "runs", [], "A run whose ROC/PR and learning curves to draw (its folder name; "
            "repeat the flag for several: sweep folder names hold commas)."),
        "comparison_samples": flags.DEFINE_integer(
            "comparison_samples", None, "Patient resamples of the paired comparisons "
            "(default: jaxtl.report.study_tests.SAMPLES)."),
    }


def check_arguments(argv: list[str]) -> None:
    if len(argv) != 2:
        raise UserError("pass the sweep's --workdir, e.g. python -m jaxtl.report runs/demo")


def check(argv: list[str], options: cli.Options) -> str:
    """--check: one sweep folder given; it is read when the command runs."""
    del options
    check_arguments(argv)
    return f"the command line parses; reports on {argv[1]} (read when the command runs)"


def main(argv: list[str], options: cli.Options) -> None:
    check_arguments(argv)
    sweep_dir = pathlib.Path(argv[1])
    if not sweep_dir.is_dir():
        raise UserError(f"{sweep_dir} is not a folder; pass the --workdir of a sweep "
                        f"(python -m jaxtl.sweep --config ... --workdir {sweep_dir})")
    from jaxtl.report import render

    samples = options["comparison_samples"].value
    paths = render(sweep_dir, options["out"].value, options["runs"].value,
                   **({} if samples is None else {"comparison_samples": samples}))
    print(f"report: {paths['markdown']}\n        {paths['html']}")


if __name__ == "__main__":
    cli.run(main, define_flags, positional="SWEEP_DIR", check=check)
