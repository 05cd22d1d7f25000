"""python -m jaxtl.commands.compare RUN_A RUN_B [--split test] [--metrics m,...] [--samples N] [--json]

Paired comparison of two runs scored on the same images (e.g. two pretraining sources at the
same training size): per metric, A - B with its 95% interval and a p-value, by DeLong's test
for one label's AUROC (clustered by patient, Obuchowski 1997, where a patient has several
images) and by a paired bootstrap over patients for every other metric
(`jaxtl.report.paired_runs`); each row names its test and the patients and images it ran on.
RUN_A or RUN_B may be several run folders joined by ':' (as in PATH; sweep folder names hold
commas): the seeds of one configuration, each side then the mean over its runs.
"""

from __future__ import annotations

import json
import os

from absl import flags

from jaxtl.commands import cli
from jaxtl.core.errors import UserError
from jaxtl.report import paired_runs as comparison


def define_flags() -> cli.Options:
    return {
        "split": flags.DEFINE_enum("split", "test", ["val", "test"], "Split to compare on."),
        "metrics": flags.DEFINE_list("metrics", [], "Metrics (default: the task's main ones; "
                                     "per label: auroc/<label>)."),
        "samples": flags.DEFINE_integer("samples", comparison.DEFAULT_SAMPLES,
                                        "Paired bootstrap resamples of patients."),
        "seed": flags.DEFINE_integer("seed", 0, "Seed of the bootstrap resamples."),
        "json": flags.DEFINE_bool("json", False, "Print JSON instead of a table."),
    }


def check_arguments(argv: list[str]) -> None:
    if len(argv) != 3:
        raise UserError("pass two run folders, e.g. python -m jaxtl.commands.compare runs/a runs/b")


def check(argv: list[str], options: cli.Options) -> str:
    """--check: two sides given; the run folders themselves are read when the command runs."""
    del options
    check_arguments(argv)
    return (f"the command line parses; compares {argv[1]} with {argv[2]} (run folders are "
            f"read when the command runs)")


def main(argv: list[str], options: cli.Options) -> None:
    check_arguments(argv)
    split = options["split"].value
    sides = [[comparison.load(path, split) for path in arg.split(os.pathsep) if path]
             for arg in argv[1:]]
    differences = comparison.compare(*sides, options["metrics"].value or None,
                                     samples=options["samples"].value,
                                     seed=options["seed"].value)
    if options["json"].value:
        print(json.dumps({"a": [r.run for r in sides[0]], "b": [r.run for r in sides[1]],
                          "split": split, "differences": [d.as_dict() for d in differences]},
                         indent=2))
        return
    first = sides[0][0]
    print(f"A: {', '.join(r.run for r in sides[0])}\nB: {', '.join(r.run for r in sides[1])}\n"
          f"{split} split: {len(first.image_ids)} images of {len(set(first.patients))} "
          f"patients, the same images and labels in every run")
    rows = [comparison.HEADER] + [comparison.cells(d) for d in differences]
    widths = [max(len(row[i]) for row in rows) for i in range(len(comparison.HEADER))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


if __name__ == "__main__":
    cli.run(main, define_flags, positional="RUN_A RUN_B", check=check)
