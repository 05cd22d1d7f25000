"""The entry point joins the processes of a multi-process job by itself, never running them as
N independent first hosts on one workdir; a run it refuses leaves no folder it created."""

from __future__ import annotations

import pytest
from programs import other_libraries_info, run_programs

from jaxtl.main import cluster_size, first_missing


@pytest.mark.parametrize("environ, expected", [
    ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4"}, ("SLURM", 4)),
    ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "8", "SLURM_STEP_NUM_TASKS": "2"}, ("SLURM", 2)),
    ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "1"}, None),  # one GPU job: nothing to join
    ({"SLURM_NTASKS": "4"}, None),  # not inside a SLURM job
    ({"OMPI_COMM_WORLD_SIZE": "2"}, ("Open MPI", 2)),
    ({"TPU_WORKER_HOSTNAMES": "t-0,t-1,t-2,t-3"}, ("a TPU slice on GKE", 4)),
    ({"TPU_WORKER_HOSTNAMES": "t-0"}, None),
    ({}, None),
])
def test_a_multi_process_job_is_recognised_from_its_scheduler(environ, expected):
    assert cluster_size(environ) == expected


def test_a_run_refused_for_a_missing_root_leaves_no_folder_it_created(tmp_path):
    existing = tmp_path / "runs"
    existing.mkdir()
    (existing / "other.txt").write_text("kept")
    refused = ["--config", "configs/eyepacs.py", f"--config.data.root={tmp_path / 'absent'}",
               f"--config.data.cache_dir={tmp_path / 'cache'}"]
    new, inside = run_programs([
        ("jaxtl.main", [*refused, "--workdir", str(tmp_path / "new" / "deeper" / "run")]),
        ("jaxtl.main", [*refused, "--workdir", str(existing / "run")])])
    for run in (new, inside):
        assert run.returncode == 2 and not run.traceback, run.stderr[-2000:]
        assert "absent does not exist" in run.stderr
        assert "\r" not in run.stdout + run.stderr and other_libraries_info(run.stderr) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    assert sorted(p.name for p in existing.iterdir()) == ["other.txt"]


def test_first_missing_is_the_outermost_folder_to_create(tmp_path):
    assert first_missing(tmp_path / "a" / "b") == tmp_path / "a"
    assert first_missing(tmp_path) is None
