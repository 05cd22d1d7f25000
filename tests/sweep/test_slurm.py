"""python -m jaxtl.sweep --launcher slurm: the runs as submitit job arrays, sources first. A tiny
sweep through submitit's local executor (no SLURM here) runs in
tests/sweep/test_sweep.py::test_tiny_sweep_end_to_end_on_both_launchers_then_report: the same
sweep then finishes on the local launcher."""

from __future__ import annotations

from test_sweep import TWO_SOURCES, write_sweep

from jaxtl.sweep import plan, slurm


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
