"""The entry point joins the processes of a multi-process job by itself, never running them as
N independent first hosts on one workdir."""

from __future__ import annotations

import pytest

from jaxtl.main import cluster_size


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
