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

import pathlib
import time

from absl import flags

from jaxtl import __version__, atomic, cli, provenance
from jaxtl.sweep import plan as planning
from jaxtl.sweep import runner, table


def define_flags() -> cli.Options:
    return {
        "config": flags.DEFINE_string("config", None, "Sweep file, e.g. configs/sweeps/demo.py "
                                      "(or file.py:arg)."),
        "workdir": flags.DEFINE_string("workdir", None, "Folder of the sweep's runs and tables."),
        "parallel": flags.DEFINE_integer("parallel", 1, "Runs at once, each its own process (on a "
                                         "2-core CPU, 2 overlap one run's compilation and "
                                         "evaluation with another's training).", lower_bound=1),
        "only": flags.DEFINE_multi_string("only", [], "KEY=VALUE: keep runs whose override KEY "
                                          "is VALUE; repeatable."),
        "dry-run": flags.DEFINE_bool("dry-run", False, "Validate every run's config and list "
                                     "the runs; train nothing."),
    }


def describe(runs: list[planning.PlannedRun]) -> list[str]:
    lines = []
    for run in runs:
        state = runner.read_status(run.workdir).get("status", "new")
        if runner.is_finished(run.workdir):
            state = "finished"
        needs = f"  (starts from {', '.join(run.needs)})" if run.needs else ""
        lines.append(f"  [{state:>11}] {run.role:>6}  {run.name}{needs}")
    return lines


def main(argv: list[str], options: cli.Options) -> int:
    del argv
    sweep_file, only = options["config"].value, options["only"].value
    sweep_dir = pathlib.Path(options["workdir"].value).resolve()
    sweep = planning.load_sweep(sweep_file)
    runs = planning.plan(sweep, sweep_dir, only)
    print(f"[sweep] {sweep_file}: {len(runs)} runs in {sweep_dir}")
    if options["dry-run"].value:
        print("\n".join(describe(runs)))
        print(f"[sweep] dry run: {len(runs)} configs valid; first command:\n  "
              + " ".join(runs[0].command()))
        return 0
    atomic.write_json(sweep_dir / table.SWEEP_FILE, {
        "sweep_file": sweep_file, "description": sweep.description, "only": only,
        "jaxtl_version": __version__, **provenance.git_commit(), "started": time.time(),
        "runs": [run.name for run in runs]}, indent=2)
    try:
        status = runner.run_all(runs, parallel=options["parallel"].value,
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
    cli.run(main, define_flags, required=("config", "workdir"))
