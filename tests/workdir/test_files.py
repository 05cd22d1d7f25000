"""The run folder: one writer at a time, a stale lock recognised, an unwritable folder named,
the config kept on resume, results only when complete."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from conftest import tiny_config

from jaxtl.core.errors import UserError, WorkdirConflict
from jaxtl.workdir import files as rundir


def test_a_second_writer_is_refused_naming_the_host_and_process(tmp_path):
    with rundir.locked(tmp_path / "run"):
        lock = json.loads((tmp_path / "run" / rundir.LOCK_FILE).read_text())
        assert (lock["host"], lock["pid"]) == (socket.gethostname(), os.getpid())
        with pytest.raises(WorkdirConflict, match=rf"in use by process {os.getpid()} on "
                           rf"{socket.gethostname()}.*one run folder has one writer"):
            with rundir.locked(tmp_path / "run"):
                pytest.fail("the second writer must not start")
    assert not (tmp_path / "run" / rundir.LOCK_FILE).exists()  # released


def test_the_lock_of_a_killed_process_is_stale(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / rundir.LOCK_FILE).write_text(json.dumps(
        {"host": socket.gethostname(), "pid": int(dead.stdout), "since": 0}))
    with rundir.locked(tmp_path / "run"):
        assert json.loads((tmp_path / "run" / rundir.LOCK_FILE).read_text())["pid"] == \
            os.getpid()


def test_a_lock_of_another_host_is_kept_and_named(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / rundir.LOCK_FILE).write_text(json.dumps(
        {"host": "other-node-7", "pid": 1234, "since": 0}))
    with pytest.raises(WorkdirConflict, match="process 1234 on other-node-7.*delete .*run.lock"):
        with rundir.locked(tmp_path / "run"):
            pass


def test_an_unwritable_run_folder_is_one_message(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(UserError, match=r"cannot write to the run folder .*file/run.*earlier "
                       r"checkpoints are intact"):
        with rundir.locked(tmp_path / "file" / "run"):
            pass


def test_results_count_only_when_complete(tmp_path):
    assert not rundir.is_finished(tmp_path)
    (tmp_path / rundir.RESULTS_FILE).write_text('{"val": {"kappa": 0.5')  # torn
    assert not rundir.is_finished(tmp_path)
    rundir.write_results(tmp_path, {"val": {"kappa": 0.5}})
    assert rundir.is_finished(tmp_path)


def test_changing_the_number_of_workers_on_resume_is_refused_with_the_reason(tmp_path):
    config = tiny_config(tmp_path)
    rundir.check_workdir(tmp_path / "run", config, write=True)
    (tmp_path / "run" / rundir.LATEST_DIR / "8").mkdir(parents=True)  # a saved checkpoint
    config.data.num_workers = 2
    with pytest.raises(WorkdirConflict, match=r"data.num_workers: 0 -> 2.*saved with "
                       r"data.num_workers=0 worker processes and resumes only with as many"):
        rundir.check_workdir(tmp_path / "run", config, write=True)
    config.data.num_workers = 0
    config.data.bad_images = "skip"  # may change: it acts from the image a run stopped at on
    rundir.check_workdir(tmp_path / "run", config, write=True)


def test_a_run_of_an_older_jaxtl_resumes_where_it_lacks_only_keys_added_since(tmp_path):
    """Keys added after a run started are compared with their defaults, as the run ran."""
    config = tiny_config(tmp_path)
    rundir.check_workdir(tmp_path / "run", config, write=True)
    (tmp_path / "run" / rundir.LATEST_DIR / "8").mkdir(parents=True)  # a saved checkpoint
    saved = json.loads((tmp_path / "run" / rundir.CONFIG_FILE).read_text())
    del saved["data"]["prepared"], saved["data"]["tfds"]  # keys an older jaxtl did not have
    (tmp_path / "run" / rundir.CONFIG_FILE).write_text(json.dumps(saved))
    rundir.check_workdir(tmp_path / "run", config, write=True)
    read = rundir.read_config(tmp_path / "run")  # as jaxtl.explain reads it: defaults filled in
    assert (read.data.prepared, read.data.tfds) == ("", "")
    assert read.data.resolution == config.data.resolution  # what the run saved is kept
    config.data.prepared = str(tmp_path / "shards")  # not the default: not how the run ran
    with pytest.raises(WorkdirConflict, match=r"data.prepared: '' -> '.*shards'"):
        rundir.check_workdir(tmp_path / "run", config, write=True)


def test_automatic_workers_resume_with_the_count_the_run_started_with(tmp_path):
    config = tiny_config(tmp_path)
    config.data.num_workers = 3  # as a run started elsewhere with -1 fixed it
    assert rundir.saved_setting(tmp_path / "run", "data.num_workers") is None  # no run yet
    rundir.check_workdir(tmp_path / "run", config, write=True)
    assert rundir.saved_setting(tmp_path / "run", "data.num_workers") is None  # no checkpoint
    (tmp_path / "run" / rundir.LATEST_DIR / "8").mkdir(parents=True)
    assert rundir.saved_setting(tmp_path / "run", "data.num_workers") == 3
