"""python -m jaxtl.sweep --config configs/sweeps/NAME.py --workdir runs/NAME
       [--parallel N] [--only key=value ...] [--dry-run] [--plan TOPOLOGY]
       [--prune_checkpoints]
       [--launcher slurm --slurm_* ...]

Runs every configuration of a sweep file in its own folder under --workdir (named after the
run's overrides), skipping finished runs and resuming unfinished ones, then writes
results.csv, results.jsonl and summary.md there and prints the summary table (each run's
headline metric with its interval, best first, failed runs marked). `--only key=value` keeps
the runs whose overrides match (repeat a key for several values; `run=NAME` picks a run by
folder name); the runs they start from are added. Exit status: 0 when every selected run
finished, 1 when some failed, 2 for a malformed sweep. `--prune_checkpoints` removes, once the
runs have ended, the latest checkpoints that finished runs kept (only `best/` is needed to
score, explain or start from a run).

`--launcher slurm` submits the runs to a SLURM cluster through submitit instead of running them
here, one job per run in job arrays (jaxtl/sweep/slurm.py); the folders, skipping and resuming
are the same, and the command waits for the jobs and writes the tables.

`--plan v5e:2x4` first compiles the runs' steps for that TPU topology (each distinct step once;
libtpu compiles without the chips: the `tpu` extra) and prints every run's projected time
and the total chip-hours (jaxtl/sweep/projection.py, docs/tpu.md); a run whose steps do not
fit in a chip's memory stops the sweep (exit 2) before any run starts.
"""

from __future__ import annotations

import pathlib
import time

from absl import flags

from jaxtl import __version__
from jaxtl.commands import cli
from jaxtl.core import atomic, provenance
from jaxtl.metrics import headline
from jaxtl.sweep import plan as planning
from jaxtl.sweep import runner, slurm, table

LAUNCHERS = ("local", "slurm")


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
        "plan": flags.DEFINE_string("plan", None, "A TPU topology (e.g. v5e:2x4): print every "
                                    "run's projected time and the chip-hours, and refuse a "
                                    "run that does not fit, before anything runs."),
        "dry-run": flags.DEFINE_bool("dry-run", False, "Validate every run's config and list "
                                     "the runs; train nothing."),
        "prune_checkpoints": flags.DEFINE_bool(
            "prune_checkpoints", False, "When the runs have ended, remove the latest "
            "checkpoints (optimizer state; for resuming) that finished runs kept "
            "(train.keep_last_checkpoint, or runs of an older jaxtl); best/ stays."),
        "launcher": flags.DEFINE_enum("launcher", "local", LAUNCHERS, "local: subprocesses "
                                      "here (--parallel at a time); slurm: one SLURM job per "
                                      "run through submitit."),
        "slurm_partition": flags.DEFINE_string("slurm_partition", "", "slurm: the partition "
                                               "(empty: the cluster's default)."),
        "slurm_gpus": flags.DEFINE_integer("slurm_gpus", 1, "slurm: GPUs per run.",
                                           lower_bound=0),
        "slurm_cpus": flags.DEFINE_integer("slurm_cpus", 8, "slurm: CPU cores per run (the "
                                           "run's Grain workers use them all).", lower_bound=1),
        "slurm_mem_gb": flags.DEFINE_float("slurm_mem_gb", 0.0, "slurm: memory per run; 0: "
                                           "the partition's default.", lower_bound=0.0),
        "slurm_timeout_min": flags.DEFINE_integer("slurm_timeout_min", 24 * 60, "slurm: time "
                                                  "limit per run (a run stopped by it resumes "
                                                  "when the sweep runs again).", lower_bound=1),
        "slurm_array_parallelism": flags.DEFINE_integer(
            "slurm_array_parallelism", 64, "slurm: jobs of an array running at once.",
            lower_bound=1),
        "submitit_cluster": flags.DEFINE_enum("submitit_cluster", "slurm",
                                              ("slurm", "local"), "slurm: submit to SLURM; "
                                              "local: submitit runs the jobs as processes on "
                                              "this machine (tests, trying a sweep out)."),
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


def check(argv: list[str], options: cli.Options) -> str:
    """--check: the sweep file loads and every selected run's config is valid (as --dry-run,
    without listing the runs or reading their folders)."""
    del argv
    sweep = planning.load_sweep(options["config"].value)
    runs = planning.plan(sweep, pathlib.Path(options["workdir"].value), options["only"].value)
    if options["plan"].value:
        from jaxtl.core.chips import parse_topology

        parse_topology(options["plan"].value)
    return f"the command line parses; {len(runs)} runs, every config valid"


def main(argv: list[str], options: cli.Options) -> int:
    del argv
    sweep_file, only = options["config"].value, options["only"].value
    sweep_dir = pathlib.Path(options["workdir"].value).resolve()
    sweep = planning.load_sweep(sweep_file)
    runs = planning.plan(sweep, sweep_dir, only)
    print(f"[sweep] {sweep_file}: {len(runs)} runs in {sweep_dir}")
    if options["plan"].value:
        from jaxtl.sweep import projection

        projected = projection.project_runs(runs, options["plan"].value)
        print("\n".join(projection.describe(projected)))
        projection.refuse_misfits(projected)
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
        if options["launcher"].value == "slurm":
            resources = slurm.Resources(
                partition=options["slurm_partition"].value, gpus=options["slurm_gpus"].value,
                cpus=options["slurm_cpus"].value, mem_gb=options["slurm_mem_gb"].value,
                timeout_min=options["slurm_timeout_min"].value,
                array_parallelism=options["slurm_array_parallelism"].value)
            status = slurm.submit_all(runs, sweep_dir, resources,
                                      cluster=options["submitit_cluster"].value,
                                      after_each=lambda: table.write(sweep_dir))
        else:
            status = runner.run_all(runs, parallel=options["parallel"].value,
                                    after_each=lambda: table.write(sweep_dir))
    except KeyboardInterrupt:
        return 130
    finally:
        table.write(sweep_dir)
    if options["prune_checkpoints"].value:
        runner.prune_checkpoints(runs)
    failed = [name for name, value in status.items()
              if value in (runner.FAILED, runner.BLOCKED)]
    print(headline.text_table(*table.summary(table.read(sweep_dir))))
    print(f"[sweep] tables: {sweep_dir / table.SUMMARY_MD}, {sweep_dir / table.RESULTS_CSV}, "
          f"{sweep_dir / table.RESULTS_JSONL}")
    for name in failed:
        print(f"[sweep] FAILED {name}: {runner.read_status(sweep_dir / name).get('error')}")
    return 1 if failed else 0


if __name__ == "__main__":
    cli.run(main, define_flags, required=("config", "workdir"), check=check)
