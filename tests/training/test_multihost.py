"""Two real JAX processes (gloo collectives on CPU) train one run and score every image once;
SIGTERM to one of them stops both at the same step, and the same commands resume the run."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import xla_flags

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def finish(processes: list[subprocess.Popen], timeout: float = 600) -> list[tuple[str, str]]:
    """Both hosts' output; a host still running after `timeout` fails the test with what both
    hosts said, the other host's too (it is what tells why the two disagree)."""
    deadline = time.time() + timeout
    try:
        return [p.communicate(timeout=max(1.0, deadline - time.time())) for p in processes]
    except subprocess.TimeoutExpired:
        for p in processes:
            p.kill()
        said = [p.communicate()[1] for p in processes]
        pytest.fail("a host did not finish in time:\n" + "\n".join(
            f"--- host {i} ---\n{stderr[-4000:]}" for i, stderr in enumerate(said)))


def test_two_processes_train_and_evaluate_exactly(tmp_path):
    port = free_port()
    env = dict(os.environ, JAXTL_CACHE=str(tmp_path / "cache"), JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = xla_flags()  # one CPU device per process: the mesh spans both processes
    command = [sys.executable, "-m", "jaxtl.main", "--config", "configs/eyepacs.py",
               "--workdir", str(tmp_path / "run"), f"--coordinator_address=127.0.0.1:{port}",
               "--num_processes=2", "--config.demo.num_patients=40",
               "--config.demo.image_size=48", "--config.demo.resolution=32",
               "--config.demo.batch_size=8", "--config.eval.batch_size=6",
               # one epoch of 8 steps, each logged: SIGTERM comes after the first
               "--config.demo.epochs=1", "--config.train.log_every_steps=1",
               "--config.demo.bootstrap_samples=10",
               "--config.demo.arch=small_cnn",  # BatchNorm statistics over both hosts too
               "--config.train.keep_last_checkpoint=true"]  # its data state is checked

    def start() -> list[subprocess.Popen]:
        return [subprocess.Popen(command + [f"--process_id={i}"], env=env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for i in range(2)]

    # preempted: the second host alone gets SIGTERM; both save the same step and stop
    processes = start()
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.time() + 600
    while not (metrics.is_file() and '"split": "train"' in metrics.read_text()):
        assert time.time() < deadline and all(p.poll() is None for p in processes)
        time.sleep(0.1)
    processes[1].send_signal(signal.SIGTERM)
    outputs = finish(processes)
    steps = set()
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 143, stderr[-3000:]
        line = next(x for x in stderr.splitlines() if x.startswith("error: "))
        steps.add(int(line.split("after step ")[1].split()[0]))
    assert len(steps) == 1  # every host agreed on the step
    assert (tmp_path / "run" / "checkpoints" / str(steps.pop())).is_dir()
    # every Python log line of a multi-host run says which host wrote it (lines of XLA's C++
    # runtime, `file.cc:N]`, bypass Python's logging)
    for index, (_, stderr) in enumerate(outputs):
        logged = [x for x in stderr.splitlines() if re.match(r"^[IWE]\d{4} .*\.py:\d+\] ", x)]
        untagged = [x for x in logged if f"[host {index}/2]" not in x]
        assert not untagged, untagged[:5]
        assert logged or index == 1  # the first host logs the run; the second may say nothing

    processes = start()  # the same commands resume
    outputs = finish(processes)
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    assert "resumed from step" in outputs[0][1]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    # 8 val images over 2 hosts with a global eval batch of 6: padding on both hosts, and
    # still every image scored exactly once.
    assert results["val"]["count"] == results["split_sizes"]["val"] == 8
    assert results["test"]["count"] == results["split_sizes"]["test"]
    last = tmp_path / "run" / "checkpoints" / str(results["steps"]) / "data"
    assert sorted(p.name for p in last.iterdir() if p.suffix == ".json") == [
        "process_0-of-2.json", "process_1-of-2.json"]
