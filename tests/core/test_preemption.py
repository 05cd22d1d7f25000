"""Real processes killed at random moments resume into exactly the run that was not
interrupted: kill -9 (with 2 Grain worker processes, against the reference run that decoded in
the main process) and SIGTERM (a checkpoint at the next step, exit code 143; resumed without
workers). Parameters and predictions are compared bit for bit. The interrupted runs are processes
forked from one that imported jaxtl once (tests/forked_runs.py); the reference run, whose
printed lines are checked, is a fresh interpreter.

The run has on every training option that carries state or random draws across a resume and
that small_cnn takes: RandAugment, random erasing, mixup and cutmix with label smoothing, the
parameters' moving average (selecting the best epoch by it), gradient accumulation and
layer-wise rate decay. The options of the transformer families (stochastic depth,
rematerialisation, LoRA) resume bitwise in tests/training/test_converted_families.py and
tests/engine/test_lora_runs.py."""

from __future__ import annotations

import os
import pathlib
import re
import signal
import sys

import numpy as np
import pytest
from conftest import xla_flags
from forked_runs import Launcher
from interrupted_runs import assert_same_run, finish, interrupt, steps_logged
from programs import other_libraries_info

from jaxtl.workdir import files as rundir

pytestmark = pytest.mark.slow

# small_cnn on 40 demo patients at 32 px: 2 epochs of 8 steps, a checkpoint every 2 steps.
ARGS = ["--config", "configs/eyepacs.py", "--config.demo.num_patients=40",
        "--config.demo.image_size=48", "--config.demo.resolution=32",
        "--config.demo.batch_size=8", "--config.eval.batch_size=8", "--config.demo.epochs=2",
        "--config.demo.arch=small_cnn", "--config.demo.bootstrap_samples=10",
        "--config.train.log_every_steps=1", "--config.train.checkpoint_every_steps=2",
        "--config.train.keep_last_checkpoint=true",  # the last checkpoints are compared
        "--config.data.randaugment=rand-m9-mstd0.5-inc1", "--config.data.random_erasing=0.25",
        "--config.train.mixup_alpha=0.8", "--config.train.cutmix_alpha=1.0",
        "--config.train.label_smoothing=0.1", "--config.train.ema_decay=0.8",
        "--config.eval.select=ema",
        "--config.train.accumulation_steps=2", "--config.optim.layer_decay=0.75"]


def command(workdir: pathlib.Path, workers: int) -> list[str]:
    return [sys.executable, "-m", "jaxtl.main", *ARGS, f"--config.demo.num_workers={workers}",
            "--workdir", str(workdir)]


def environment(cache: pathlib.Path) -> dict[str, str]:
    # XLA's default compile effort: these runs' steps (RandAugment, mixup, accumulation) take
    # longer than compiling them (conftest.py)
    return dict(os.environ, JAXTL_CACHE=str(cache), XLA_FLAGS=xla_flags(fast=False))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def launcher(cache):
    with Launcher(environment(cache)) as started:
        yield started


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, cache):
    """The run that is never interrupted (no worker processes), and what it printed (piped)."""
    workdir = tmp_path_factory.mktemp("reference") / "run"
    return workdir, finish(command(workdir, 0), environment(cache))


@pytest.fixture(scope="module")
def reference(reference_run):
    return reference_run[0]


def test_a_piped_run_prints_plain_lines_and_no_other_librarys_info(reference_run):
    """Redirected (nohup, SLURM), every line stands alone: progress as plain lines, no
    carriage returns, the epoch lines greppable, and no INFO lines of JAX, Orbax or Grain."""
    _, result = reference_run
    printed = result.stdout + result.stderr
    assert "\r" not in printed
    assert other_libraries_info(result.stderr) == []
    assert "Unable to initialize backend" not in printed
    epochs = [line for line in result.stderr.splitlines()
              if re.search(r"\] DEMO \| epoch \d+: val kappa \S+", line)]
    assert len(epochs) == 2, result.stderr[-3000:]  # --config.demo.epochs=2
    progress = [line for line in result.stderr.splitlines() if line.startswith("DEMO train: step ")]
    assert progress and progress[-1].startswith("DEMO train: step 16/16 (100%)"), progress


def test_kill_9_at_random_moments_then_resume_is_the_uninterrupted_run(tmp_path, cache,
                                                                      reference, launcher):
    # With worker processes: their input position is restored too, and the reference run
    # decodes in the main process, so the two ways of reading give the same batches. Resuming
    # without workers is the SIGTERM test's.
    workers, kills = 2, 2
    rng = np.random.default_rng(workers)
    workdir = tmp_path / "run"
    args, env = command(workdir, workers), environment(cache)
    for _ in range(kills):
        reached = steps_logged(workdir)
        killed = interrupt(args, env, workdir, reached + 1, rng.uniform(0.0, 1.0),
                           signal.SIGKILL, launcher=launcher)
        assert killed.returncode in (-signal.SIGKILL, 0), killed.stderr[-3000:]
    finished = finish(args, env, launcher)
    assert_same_run(workdir, reference)
    # with worker processes too, the run's evaluation passes and its end leave no shared memory
    assert "leaked shared_memory" not in finished.stderr


def test_sigterm_saves_the_next_step_and_resumes_into_the_uninterrupted_run(
        tmp_path, cache, reference, launcher):
    """SIGTERM repeated every 20 ms until the run has exited, as schedulers repeat it and as a
    sweep killed with kill -9 sends it (PR_SET_PDEATHSIG: one for each of the sweep's threads
    as they exit): the first asks for the checkpoint, the others wait for it."""
    workdir = tmp_path / "run"
    args, env = command(workdir, 0), environment(cache)
    stopped = interrupt(args, env, workdir, 3, 0.0, signal.SIGTERM, repeat=True,
                        launcher=launcher)
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    line = [text for text in stopped.stderr.splitlines() if text.startswith("error: ")]
    assert len(line) == 1 and "stopped by SIGTERM after step" in line[0], stopped.stderr[-2000:]
    step = int(line[0].split("after step ")[1].split()[0])
    assert (workdir / rundir.LATEST_DIR / str(step)).is_dir()  # saved at that very step
    assert not (workdir / rundir.LOCK_FILE).exists()
    assert "Traceback" not in stopped.stderr
    finish(args, env, launcher)
    assert_same_run(workdir, reference)
