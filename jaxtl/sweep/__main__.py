"""python -m jaxtl.sweep --config configs/sweeps/NAME.py --workdir runs/NAME
       [--parallel N] [--only key=value ...] [--dry-run]

Runs every configuration of a sweep file in its own folder under --workdir (named after the
run's overrides), skipping finished runs and resuming unfinished ones, then writes
results.csv and results.jsonl there. `--only key=value` keeps the runs whose overrides match
(repeat a key for several values; `run=NAME` picks a run by folder name); the runs they start
from are added. Exit status: 0 when every selected run finished, 1 when some failed, 2 for a
malformed sweep.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

from jaxtl import __version__, provenance
from jaxtl.errors import UserError
from jaxtl.sweep import plan as planning
from jaxtl.sweep import runner, table

SWEEP_FILE = "sweep.json"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jaxtl.sweep", description=__doc__.split(
        "\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True,
                        help="sweep file, e.g. configs/sweeps/demo.py (or file.py:arg)")
    parser.add_argument("--workdir", required=True, help="folder of the sweep's runs and tables")
    parser.add_argument("--parallel", type=int, default=1,
                        help="runs at once (each uses every core: 1 is best on a small CPU)")
    parser.add_argument("--only", action="append", default=[], metavar="KEY=VALUE",
                        help="keep runs whose override KEY is VALUE; repeatable")
    parser.add_argument("--dry-run", action="store_true",
                        help="validate every run's config and list the runs; train nothing")
    args = parser.parse_args(argv)
    if args.parallel < 1:
        parser.error("--parallel must be at least 1")
    return args


def describe(runs: list[planning.PlannedRun]) -> list[str]:
    lines = []
    for run in runs:
        state = runner.read_status(run.workdir).get("status", "new")
        if runner.is_finished(run.workdir):
            state = "finished"
        needs = f"  (starts from {', '.join(run.needs)})" if run.needs else ""
        lines.append(f"  [{state:>11}] {run.role:>6}  {run.name}{needs}")
    return lines


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    sweep_dir = pathlib.Path(args.workdir).resolve()
    try:
        sweep = planning.load_sweep(args.config)
        runs = planning.plan(sweep, sweep_dir, args.only)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"[sweep] {args.config}: {len(runs)} runs in {sweep_dir}")
    if args.dry_run:
        print("\n".join(describe(runs)))
        print(f"[sweep] dry run: {len(runs)} configs valid; first command:\n  "
              + " ".join(runs[0].command()))
        return 0
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / SWEEP_FILE).write_text(json.dumps({
        "sweep_file": args.config, "description": sweep.description, "only": args.only,
        "jaxtl_version": __version__, **provenance.git_commit(), "started": time.time(),
        "runs": [run.name for run in runs]}, indent=2))
    try:
        status = runner.run_all(runs, parallel=args.parallel,
                                after_each=lambda: table.write(sweep_dir))
    except KeyboardInterrupt:
        return 130
    finally:
        table.write(sweep_dir)
    failed = [name for name, value in status.items()
              if value in (runner.FAILED, runner.BLOCKED)]
    print(f"[sweep] tables: {sweep_dir / table.RESULTS_CSV}, {sweep_dir / table.RESULTS_JSONL}")
    for name in failed:
        print(f"[sweep] FAILED {name}: {runner.read_status(sweep_dir / name).get('error')}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
