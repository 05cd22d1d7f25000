"""Training runs as real processes, interrupted and finished, compared bit for bit: what the
kill -9 and SIGTERM tests share (tests/core/test_preemption.py,
tests/training/test_converted_families.py). With a `Launcher` (tests/forked_runs.py) a run is
a process forked from one that imported jaxtl already; without, a fresh interpreter."""

from __future__ import annotations

import json
import pathlib
import subprocess
import time

import jax
import numpy as np
from forked_runs import ForkedProgram, Launcher

from jaxtl.engine import transfer
from jaxtl.workdir import files as rundir

REPO = pathlib.Path(__file__).resolve().parents[1]


def steps_logged(workdir: pathlib.Path) -> int:
    path = workdir / rundir.METRICS_FILE
    if not path.is_file():
        return 0
    return sum('"split": "train"' in line for line in path.read_text().splitlines())


def start(args: list[str], env: dict[str, str],
          launcher: Launcher | None) -> ForkedProgram | subprocess.Popen:
    """The run as a process: forked by `launcher`, or a fresh interpreter."""
    if launcher is not None:
        return launcher.start(args, env)
    return subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def interrupt(args: list[str], env: dict[str, str], workdir: pathlib.Path, after_step: int,
              delay: float, sig: int, repeat: bool = False,
              launcher: Launcher | None = None) -> subprocess.CompletedProcess:
    """Starts the run and sends `sig` `delay` seconds after it has logged `after_step` steps
    (or lets it end, if it ends first); with `repeat`, again every 20 ms until it ends."""
    process = start(args, env, launcher)
    deadline = time.time() + 600
    while process.poll() is None and steps_logged(workdir) < after_step:
        assert time.time() < deadline, "the run made no progress"
        time.sleep(0.05)
    time.sleep(delay)
    if process.poll() is None:
        process.send_signal(sig)
    while repeat and process.poll() is None:
        time.sleep(0.02)
        if process.poll() is None:
            process.send_signal(sig)
    _, stderr = process.communicate(timeout=600)
    return subprocess.CompletedProcess(args, process.returncode, "", stderr)


def finish(args: list[str], env: dict[str, str],
           launcher: Launcher | None = None) -> subprocess.CompletedProcess:
    if launcher is not None:
        result = launcher.run(args, env, timeout=900)
    else:
        result = subprocess.run(args, check=False, env=env, cwd=REPO, capture_output=True,
                                text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def assert_same_run(workdir: pathlib.Path, reference: pathlib.Path) -> None:
    """The same best parameters and statistics, the same last checkpoint, the same
    predictions and metrics, bit for bit."""
    def leaves(variables):
        return [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(variables)]

    for ours, theirs in zip(leaves(transfer.load_variables(workdir)),
                            leaves(transfer.load_variables(reference))):
        np.testing.assert_array_equal(ours, theirs)
    last = max(int(p.name) for p in (reference / rundir.LATEST_DIR).iterdir())
    for ours, theirs in zip(
            leaves(transfer.load_variables(workdir / rundir.LATEST_DIR / str(last))),
            leaves(transfer.load_variables(reference / rundir.LATEST_DIR / str(last)))):
        np.testing.assert_array_equal(ours, theirs)
    for split in ("val", "test"):
        with np.load(rundir.predictions_file(workdir, split)) as ours, \
                np.load(rundir.predictions_file(reference, split)) as theirs:
            for key in ("labels", "scores", "image_ids"):
                np.testing.assert_array_equal(ours[key], theirs[key])
    ours, theirs = (json.loads((folder / rundir.RESULTS_FILE).read_text())
                    for folder in (workdir, reference))
    for key in ("val", "test", "best_epoch", "steps"):
        assert ours[key] == theirs[key], key


def killed_after_first_checkpoint(args: list[str], env: dict[str, str], workdir: pathlib.Path,
                                  launcher: Launcher | None = None
                                  ) -> subprocess.CompletedProcess:
    """Starts the run and kills it (SIGKILL) as soon as its first latest checkpoint is
    complete (Orbax renames its temporary folder to the step's number when it is)."""
    process = start(args, env, launcher)
    latest = workdir / rundir.LATEST_DIR
    deadline = time.time() + 600
    while process.poll() is None and not (
            latest.is_dir() and any(p.name.isdigit() for p in latest.iterdir())):
        assert time.time() < deadline, "the run saved no checkpoint"
        time.sleep(0.02)
    if process.poll() is None:
        process.kill()
    _, stderr = process.communicate(timeout=600)
    return subprocess.CompletedProcess(args, process.returncode, "", stderr)
