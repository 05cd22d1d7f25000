"""python -m jaxtl.sweep --launcher slurm: the runs as submitit job arrays, sources first, tried
with submitit's local executor (no SLURM here)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_sweep import REPO, TINY_SWEEP, TWO_SOURCES, write_sweep

from jaxtl.sweep import plan, runner, slurm, table


def test_runs_that_start_from_others_go_into_later_arrays(tmp_path):
    runs = plan.plan(write_sweep(tmp_path, TWO_SOURCES), tmp_path / "sweep")
    first, second = slurm.waves(runs)
    assert [run.name for run in first] == [run.name for run in runs if not run.needs]
    assert {run.name for run in second} == {run.name for run in runs if run.needs}
    assert len(first) == 6 and len(second) == 4


def test_each_run_asks_for_its_resources():
    parameters = slurm.Resources(partition="gpu", gpus=2, cpus=16, mem_gb=64,
                                 timeout_min=90).parameters("jaxtl-sweep-0")
    assert parameters == {"name": "jaxtl-sweep-0", "timeout_min": 90, "gpus_per_node": 2,
                          "cpus_per_task": 16, "tasks_per_node": 1, "nodes": 1,
                          "slurm_array_parallelism": 64, "slurm_partition": "gpu",
                          "mem_gb": 64}


@pytest.mark.slow
def test_a_tiny_sweep_runs_as_job_arrays_through_submitits_local_executor(tmp_path):
    """A fine-tuning run and the run it starts from: two arrays, the source's first."""
    write_sweep(tmp_path, TINY_SWEEP.format(cache=tmp_path / "cache"))
    command = [sys.executable, "-m", "jaxtl.sweep", "--config", str(tmp_path / "sweep_file.py"),
               "--workdir", str(tmp_path / "runs"), "--only", "model.init=run:pre",
               "--launcher", "slurm",
               "--submitit_cluster", "local", "--slurm_gpus", "0", "--slurm_cpus", "1"]
    first = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "[sweep] 0 finished, 2 to submit to local" in first.stdout
    rows = table.read(tmp_path / "runs")
    assert [(r["run"], r["status"]) for r in rows] == [("init=pre,n=4", "done"), ("pre", "done")]
    source = runner.read_status(tmp_path / "runs" / "pre")
    tuned = runner.read_status(tmp_path / "runs" / "init=pre,n=4")
    assert tuned["started"] >= source["finished"]  # the source's array ran first
    assert source["job_id"] != tuned["job_id"]  # one job per run
    assert json.loads((tmp_path / "runs" / "init=pre,n=4" / "results.json").read_text())[
        "config"]["model"]["init"] == str(tmp_path / "runs" / "pre")
    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "[sweep] 2 finished, 0 to submit" in again.stdout
