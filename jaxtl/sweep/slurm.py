"""The SLURM launcher of `python -m jaxtl.sweep --launcher slurm`, through submitit.

Every unfinished run of the sweep is one job of a job array; in its job the run is launched as
the local launcher launches it (`runner.run_all` of that one run: `python -m jaxtl.main` in a
subprocess, `sweep_run.json` and `sweep.log` in the run folder, the same folder names), so a
sweep can move between a workstation and a cluster and finished runs are skipped either way.
Runs that start from another run (`model.init="run:NAME"`) go into later arrays: on SLURM each
array depends on the jobs of the runs it starts from (`afterok`, cancelled when one fails);
executors without dependencies (submitit's local executor) wait for the earlier array instead.
The sweep command waits for every job and then writes the tables, as with the local launcher.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable, Sequence
from typing import Any

from jaxtl.sweep import runner
from jaxtl.sweep.plan import PlannedRun
from jaxtl.workdir.files import is_finished

JOBS_DIR = "slurm"  # under the sweep folder: submitit's scripts, logs and results per job


@dataclasses.dataclass(frozen=True)
class Resources:
    """What one run's job asks for."""

    partition: str = ""
    gpus: int = 1
    cpus: int = 8
    mem_gb: float = 0.0  # 0: the partition's default
    timeout_min: int = 24 * 60
    array_parallelism: int = 64  # jobs of one array running at once

    def parameters(self, name: str) -> dict[str, Any]:
        parameters: dict[str, Any] = {
            "name": name, "timeout_min": self.timeout_min, "gpus_per_node": self.gpus,
            "cpus_per_task": self.cpus, "tasks_per_node": 1, "nodes": 1,
            "slurm_array_parallelism": self.array_parallelism}
        if self.partition:
            parameters["slurm_partition"] = self.partition
        if self.mem_gb:
            parameters["mem_gb"] = self.mem_gb
        return parameters


def run_in_job(run: PlannedRun) -> str:
    """What each job runs: the one run, as the local launcher runs it; returns its status."""
    return runner.run_all([dataclasses.replace(run, needs=())])[run.name]


def waves(runs: Sequence[PlannedRun]) -> list[list[PlannedRun]]:
    """The runs in arrays: a run comes after every run it starts from (planned order kept)."""
    depth: dict[str, int] = {}
    names = {run.name for run in runs}
    remaining = list(runs)
    while remaining:
        ready = [run for run in remaining
                 if all(need in depth or need not in names for need in run.needs)]
        if not ready:
            raise ValueError("the sweep's runs start from each other in a cycle")
        for run in ready:
            depth[run.name] = max((depth[n] + 1 for n in run.needs if n in depth), default=0)
        remaining = [run for run in remaining if run.name not in depth]
    grouped: list[list[PlannedRun]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for run in runs:
        grouped[depth[run.name]].append(run)
    return grouped


def submit_all(runs: Sequence[PlannedRun], sweep_dir: pathlib.Path, resources: Resources, *,
               cluster: str | None = None, out: Callable[[str], None] = print,
               after_each: Callable[[], None] | None = None) -> dict[str, str]:
    """Submits the unfinished runs and waits for them; returns {name: status} as
    `runner.run_all` does. `cluster`: submitit's ('slurm', or 'local' to run the jobs as
    processes here); None lets submitit choose (SLURM where there is one)."""
    import submitit

    executor = submitit.AutoExecutor(folder=sweep_dir / JOBS_DIR / "%j", cluster=cluster)
    dependencies = executor.cluster == "slurm"
    status = {run.name: runner.DONE for run in runs if is_finished(run.workdir)}
    todo = [run for run in runs if run.name not in status]
    out(f"[sweep] {len(status)} finished, {len(todo)} to submit to {executor.cluster}")
    jobs: dict[str, Any] = {}

    def collect(names: Sequence[str]) -> None:
        for name in names:
            try:
                status[name] = jobs[name].result()
            except Exception as error:  # noqa: BLE001 - a job that failed or was cancelled
                status[name] = runner.FAILED
                out(f"[sweep] job {jobs[name].job_id} of {name} ended without a result: "
                    f"{str(error).strip().splitlines()[-1] if str(error).strip() else error}")
            out(f"[sweep] {status[name]}: {name} (job {jobs[name].job_id})")
            if after_each is not None:
                after_each()

    for index, wave in enumerate(waves(todo)):
        if not dependencies:
            collect([n for n in jobs if n not in status])
        blocked = [run for run in wave
                   if any(status.get(n) in (runner.FAILED, runner.BLOCKED) for n in run.needs)]
        for run in blocked:
            status[run.name] = runner.BLOCKED
            runner.write_status(run, status=runner.BLOCKED,
                                error=f"starts from a run that failed ({', '.join(run.needs)})")
        wave = [run for run in wave if run not in blocked]
        if not wave:
            continue
        parameters = resources.parameters(f"jaxtl-sweep-{index}")
        after = sorted({jobs[n].job_id for run in wave for n in run.needs if n in jobs})
        if dependencies:
            parameters["slurm_additional_parameters"] = (
                {"dependency": "afterok:" + ":".join(after), "kill-on-invalid-dep": "yes"}
                if after else {})
        executor.update_parameters(**parameters)
        with executor.batch():
            submitted = [executor.submit(run_in_job, run) for run in wave]
        for run, job in zip(wave, submitted):
            jobs[run.name] = job
            run.workdir.mkdir(parents=True, exist_ok=True)
            runner.write_status(run, status="submitted", error=None, job_id=job.job_id)
        out(f"[sweep] submitted {len(wave)} run(s) as job array {submitted[0].job_id}"
            + (f", after jobs {', '.join(after)}" if after and dependencies else ""))
    collect([n for n in jobs if n not in status])
    return status
