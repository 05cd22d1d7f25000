"""Runs the planned runs as `python -m jaxtl.main` subprocesses, N at a time.

Why subprocesses and not train_and_evaluate() in this process: a run that crashes (an XLA
abort, running out of memory) or leaks state (JAX config, absl flags, Grain workers, compiled
programs held in memory) takes only itself down; `--parallel N` is N processes; and each run is
exactly the command a person would type, which its folder records. The price, a JAX import and a
compilation per run, is what the persistent compilation cache (jaxtl.core.compile_cache) takes back.

Each run folder gets `sweep_run.json` (status, error, attempts, wall time, command) and
`sweep.log` (the run's stdout and stderr). A run with a complete results.json is finished and skipped;
any other run is launched, and jaxtl resumes it from its latest checkpoint. `prune_checkpoints`
removes the latest checkpoints that finished runs kept (`train.keep_last_checkpoint`, or runs
from before a finished run removed its own); their best checkpoints stay.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

from jaxtl.core import atomic
from jaxtl.core.errors import WorkdirConflict
from jaxtl.core.preemption import PARENT_PID_VARIABLE
from jaxtl.engine import hub
from jaxtl.sweep.plan import PlannedRun
from jaxtl.workdir import files as rundir
from jaxtl.workdir.checkpoints import remove_latest
from jaxtl.workdir.files import is_finished

DONE, FAILED, BLOCKED, PENDING, RUNNING, INTERRUPTED = (
    "done", "failed", "blocked", "pending", "running", "interrupted")
POLL_SECONDS = 0.5


def read_status(workdir: pathlib.Path) -> dict[str, Any]:
    path = workdir / rundir.SWEEP_STATUS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def write_status(run: PlannedRun, **fields: Any) -> dict[str, Any]:
    record = read_status(run.workdir)
    record.update(run.record())
    record.update(fields)
    atomic.write_json(run.workdir / rundir.SWEEP_STATUS_FILE, record, indent=2, default=list)
    return record


def error_from_log(text: str, returncode: int) -> str:
    """The line that says why a run stopped: jaxtl's `error: ...`, else the exception line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("error: "):
            return line.removeprefix("error: ")
    for line in reversed(lines):
        if re.match(r"^[\w.]*(Error|Exception|Interrupt|Exit)\b", line):
            return line
    if returncode < 0:
        name = signal.Signals(-returncode).name
        return f"killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
    return f"exit status {returncode}" + (f": {lines[-1]}" if lines else "")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


@dataclasses.dataclass
class _Active:
    run: PlannedRun
    process: subprocess.Popen
    started: float
    log: TextIO
    log_offset: int
    slot: int  # which of the `--parallel` device slots the run uses


def visible_gpus(environ: Mapping[str, str]) -> list[str]:
    """The GPUs runs may use: CUDA_VISIBLE_DEVICES when set, else what nvidia-smi lists."""
    if "CUDA_VISIBLE_DEVICES" in environ:
        return [gpu for gpu in environ["CUDA_VISIBLE_DEVICES"].split(",") if gpu.strip()]
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                                 timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(listing.stdout.splitlines())
            if line.startswith("GPU ")]


def slot_environment(slot: int, parallel: int, gpus: Sequence[str]) -> dict[str, str]:
    """What run slot `slot` of `parallel` sets so that concurrent runs do not share devices,
    or, with fewer GPUs than runs, share each GPU's memory in equal parts instead of each
    run preallocating most of it. Empty on a machine without GPUs or for one run at a time."""
    if not gpus or parallel == 1:
        return {}
    if len(gpus) >= parallel:
        return {"CUDA_VISIBLE_DEVICES": ",".join(gpus[slot::parallel])}
    runs_per_gpu = -(-parallel // len(gpus))
    return {"CUDA_VISIBLE_DEVICES": gpus[slot % len(gpus)],
            "XLA_PYTHON_CLIENT_MEM_FRACTION": f"{0.9 / runs_per_gpu:.3f}"}


@dataclasses.dataclass
class Progress:
    """Counts of this sweep invocation and the line that reports them."""

    total: int
    parallel: int
    out: Callable[[str], None]
    started: float = dataclasses.field(default_factory=time.time)
    done: int = 0
    skipped: int = 0
    failed: int = 0
    running: int = 0
    durations: list[float] = dataclasses.field(default_factory=list)

    def remaining(self) -> int:
        return self.total - self.done - self.failed

    def eta(self) -> str:
        if not self.durations:
            return "ETA after the first run"
        mean = sum(self.durations) / len(self.durations)
        waves = -(-self.remaining() // self.parallel)
        return f"ETA {_duration(waves * mean)}"

    def report(self, event: str) -> None:
        self.out(f"[sweep] {self.done}/{self.total} done"
                 + (f" ({self.skipped} already finished)" if self.skipped else "")
                 + f", {self.failed} failed, {self.remaining()} remaining"
                 + (f" ({self.running} running)" if self.running else "")
                 + f" | elapsed {_duration(time.time() - self.started)}, {self.eta()}"
                 + (f" | {event}" if event else ""))


def missing_init(run: PlannedRun) -> str | None:
    """A model.init folder (not a run of the sweep) that is not there: fail before launching."""
    init = run.overrides.get("model.init", "")
    if (init and not run.needs and not hub.is_reference(init)
            and not pathlib.Path(init).exists()):
        return (f"model.init={init} does not exist; convert the checkpoint first "
                f"(tools/convert_weights) or fix the sweep's path")
    return None


def run_all(runs: Sequence[PlannedRun], parallel: int = 1,
            out: Callable[[str], None] = print,
            after_each: Callable[[], None] | None = None,
            env: dict[str, str] | None = None) -> dict[str, str]:
    """Runs what is not finished; returns {name: status}. Failures do not stop the others."""
    status = {run.name: (DONE if is_finished(run.workdir) else PENDING) for run in runs}
    by_name = {run.name: run for run in runs}
    progress = Progress(total=len(runs), parallel=max(1, parallel), out=out)
    progress.skipped = progress.done = sum(value == DONE for value in status.values())
    active: dict[str, _Active] = {}
    environment = dict(os.environ) if env is None else dict(env)
    gpus = visible_gpus(environment)
    free_slots = list(range(progress.parallel))
    progress.report("starting")

    def finish(name: str, outcome: str, seconds: float, error: str | None, **extra: Any) -> None:
        status[name] = outcome
        previous = read_status(by_name[name].workdir).get("wall_seconds", 0.0)
        write_status(by_name[name], status=outcome, error=error, finished=time.time(),
                     wall_seconds=previous + seconds, **extra)
        if outcome == DONE:
            progress.done += 1
            progress.durations.append(seconds)
        else:
            progress.failed += 1
        if after_each is not None:
            after_each()
        progress.report(f"{outcome}: {name}" + (f" in {_duration(seconds)}" if seconds else "")
                        + (f" ({error})" if error else ""))

    try:
        while True:
            for run in runs:
                if len(active) >= progress.parallel:
                    break
                if status[run.name] != PENDING:
                    continue
                failed_needs = [n for n in run.needs if status[n] in (FAILED, BLOCKED)]
                if failed_needs:
                    finish(run.name, BLOCKED, 0.0,
                           f"starts from run {failed_needs[0]}, which failed")
                    continue
                if any(status[n] != DONE for n in run.needs):
                    continue
                if (problem := missing_init(run)) is not None:
                    finish(run.name, FAILED, 0.0, problem)
                    continue
                slot = free_slots.pop(0)
                active[run.name] = _launch(
                    run, environment | slot_environment(slot, progress.parallel, gpus), slot)
                status[run.name] = RUNNING
                progress.running = len(active)
                progress.report(f"started: {run.name}")
            if not active:
                break
            time.sleep(POLL_SECONDS)
            for name, job in list(active.items()):
                ended = _reap(job)
                if ended is None:
                    continue
                returncode, cpu_seconds = ended
                del active[name]
                free_slots.append(job.slot)
                progress.running = len(active)
                job.log.close()
                seconds = time.time() - job.started
                cpu_total = read_status(job.run.workdir).get("cpu_seconds", 0.0) + cpu_seconds
                if returncode == 0 and is_finished(job.run.workdir):
                    finish(name, DONE, seconds, None, returncode=0, cpu_seconds=cpu_total)
                else:
                    log_file = job.run.workdir / rundir.SWEEP_LOG_FILE
                    log_text = log_file.read_text(errors="replace")
                    error = error_from_log(log_text[job.log_offset:], returncode)
                    finish(name, FAILED, seconds, error, returncode=returncode,
                           cpu_seconds=cpu_total)
    except KeyboardInterrupt:
        for name, job in active.items():
            os.killpg(job.process.pid, signal.SIGTERM)
            job.process.wait()
            job.log.close()
            previous = read_status(job.run.workdir).get("wall_seconds", 0.0)
            write_status(job.run, status=INTERRUPTED, error="interrupted (Ctrl-C)",
                         wall_seconds=previous + time.time() - job.started)
        out("[sweep] interrupted: running the same command again resumes the unfinished runs")
        raise
    return status


def _reap(job: _Active) -> tuple[int, float] | None:
    """(exit status, CPU seconds of the run's process tree) once it has ended, else None.

    CPU time (user + system, the run and the processes it waited for) measures a run's cost
    independently of how busy a shared machine was.
    """
    pid, wait_status, usage = os.wait4(job.process.pid, os.WNOHANG)
    if pid == 0:
        return None
    job.process.returncode = os.waitstatus_to_exitcode(wait_status)
    return job.process.returncode, usage.ru_utime + usage.ru_stime


def _launch(run: PlannedRun, env: dict[str, str], slot: int) -> _Active:
    run.workdir.mkdir(parents=True, exist_ok=True)
    attempts = read_status(run.workdir).get("attempts", 0) + 1
    write_status(run, status=RUNNING, error=None, started=time.time(), attempts=attempts)
    log_path = run.workdir / rundir.SWEEP_LOG_FILE
    log = log_path.open("a")
    offset = log_path.stat().st_size
    log.write(f"# attempt {attempts}: {' '.join(run.command())}\n")
    log.flush()
    # A session of its own: Ctrl-C reaches the sweep, which then stops its runs cleanly.
    # The run stops (SIGTERM: checkpoint, exit) when the sweep dies, even by kill -9.
    env = env | {PARENT_PID_VARIABLE: str(os.getpid())}
    process = subprocess.Popen(run.command(), stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True, env=env)
    return _Active(run=run, process=process, started=time.time(), log=log, log_offset=offset,
                   slot=slot)


def prune_checkpoints(runs: Sequence[PlannedRun], out: Callable[[str], None] = print) -> int:
    """Removes the latest checkpoints (optimizer state, input position) of the finished runs
    among `runs`, leaving their best checkpoints, predictions and results; a run folder in use
    by another process is left alone. Returns the bytes freed."""
    freed, pruned = 0, 0
    for run in runs:
        if not (is_finished(run.workdir) and rundir.has_checkpoints(run.workdir)):
            continue
        try:
            with rundir.locked(run.workdir):
                freed += remove_latest(run.workdir)
                pruned += 1
        except WorkdirConflict as error:
            out(f"[sweep] not pruned: {error}")
    out(f"[sweep] pruned the latest checkpoints of {pruned} finished run(s): "
        f"{freed / 1e6:.0f} MB freed")
    return freed
