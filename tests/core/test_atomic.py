"""Demo writers stage a whole dataset folder and rename it into place only when complete."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from jaxtl.core.atomic import replaced_folder, staged_folder


def test_a_finished_block_renames_the_folder_into_place(tmp_path):
    root = tmp_path / "parent" / "dataset"
    with staged_folder(root) as staging:
        assert staging.parent == root.parent and not root.exists()
        (staging / "labels.csv").write_text("a,b\n")
    assert (root / "labels.csv").read_text() == "a,b\n"
    assert sorted(p.name for p in root.parent.iterdir()) == ["dataset"]
    assert oct(root.stat().st_mode & 0o777) == oct(0o755)


def test_an_interrupted_block_leaves_nothing(tmp_path):
    root = tmp_path / "dataset"
    with pytest.raises(KeyboardInterrupt), staged_folder(root) as staging:
        (staging / "half.csv").write_text("a\n")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_an_existing_root_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / "dataset").mkdir()
    with pytest.raises(FileExistsError, match="already exists"), \
            staged_folder(tmp_path / "dataset"):
        pytest.fail("the block must not run")
    assert [p.name for p in tmp_path.iterdir()] == ["dataset"]


def test_a_replaced_folder_is_swapped_whole_or_not_at_all(tmp_path):
    root = tmp_path / "explain"
    root.mkdir()
    (root / "old.txt").write_text("old")
    with replaced_folder(root) as staging:
        (staging / "new.txt").write_text("new")
        assert (root / "old.txt").is_file()  # readers see the old folder until the end
    assert [p.name for p in root.iterdir()] == ["new.txt"]
    with pytest.raises(RuntimeError), replaced_folder(root) as staging:
        (staging / "partial.txt").write_text("x")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["explain"]
    assert [p.name for p in root.iterdir()] == ["new.txt"]


def test_a_writer_killed_at_any_moment_leaves_the_old_file_or_the_new_one(tmp_path):
    """kill -9 a process that rewrites results.json in a loop, at random moments: the file is
    always one complete version, never torn. The writers are forked, one per kill, from one
    process that imported jaxtl once (each import took seconds)."""
    script = (
        "import os, pathlib, sys\n"
        "from jaxtl.workdir import files as rundir\n"
        "folder = pathlib.Path(sys.argv[1])\n"
        "rundir.write_results(folder, {'version': 0, 'rows': list(range(20000))})\n"
        "for _ in sys.stdin:  # a writer per line, told by its pid\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        for i in range(1, 10**9):\n"
        "            rundir.write_results(folder, {'version': i, 'rows': list(range(20000))})\n"
        "    print(pid, flush=True)\n"
        "    os.waitpid(pid, 0)\n"
        "    print('gone', flush=True)\n")
    rng = np.random.default_rng(0)
    versions = set()
    with subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as forker:
        for _ in range(5):
            forker.stdin.write("write\n")
            forker.stdin.flush()
            writer = int(forker.stdout.readline())
            time.sleep(rng.uniform(0.05, 0.5))
            os.kill(writer, signal.SIGKILL)
            assert forker.stdout.readline() == "gone\n"  # the writer has exited
            results = json.loads((tmp_path / "results.json").read_text())  # never torn
            assert results["rows"] == list(range(20000))
            versions.add(results["version"])
        forker.stdin.close()
    assert forker.returncode == 0
    assert len(versions) > 1  # it was killed at different moments
