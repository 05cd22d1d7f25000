"""python -m jaxtl.report runs/NAME [--out DIR] [--runs RUN ...]

Writes report.md (with PNG figures beside it) and a self-contained report.html from the sweep's
results.jsonl and run folders: metric against training images per class per pretraining source
(overall, per model, per optimizer), ROC and precision-recall curves, the confusion matrix,
learning curves and tables with confidence intervals.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from jaxtl.errors import UserError


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m jaxtl.report",
                                     description=__doc__.split("\n\n")[1])
    parser.add_argument("sweep_dir", help="the sweep's --workdir, e.g. runs/demo")
    parser.add_argument("--out", default=None, help="output folder (default: SWEEP_DIR/report)")
    parser.add_argument("--runs", nargs="+", default=[], metavar="RUN",
                        help="runs whose ROC/PR and learning curves to draw")
    args = parser.parse_args(argv)
    sweep_dir = pathlib.Path(args.sweep_dir)
    if not sweep_dir.is_dir():
        print(f"error: {sweep_dir} is not a folder; pass the --workdir of a sweep "
              f"(python -m jaxtl.sweep --config ... --workdir {sweep_dir})", file=sys.stderr)
        return 2
    from jaxtl.report import render

    try:
        paths = render(sweep_dir, args.out, args.runs)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"report: {paths['markdown']}\n        {paths['html']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
