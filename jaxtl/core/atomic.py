"""Writing files and folders all at once: a reader sees the old version or the new, never half.

Every file jaxtl writes for others to read (results, configs, tables, predictions, caches) goes
through here: the content is written to a hidden temporary name in the same folder, flushed to
disk, and renamed over the target (`os.replace`, atomic on POSIX). A process killed mid-write
leaves the previous file (or none) and a stray temporary file, never a torn one.

Folders (a demo dataset, a patch cache) are filled in a hidden sibling folder and renamed into
place when complete; when another process renamed its own copy into place first, ours is
discarded, so concurrent writers of the same cache all end with one complete folder. A folder
written again (a run's explanations) replaces the old one whole (`replaced_folder`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pathlib
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np


def write_bytes(path: str | os.PathLike, data: bytes) -> pathlib.Path:
    """Replaces `path` with `data` atomically; creates its folder if needed."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it private; these files are ordinary data
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> pathlib.Path:
    return write_bytes(path, text.encode())


def write_json(path: str | os.PathLike, value: Any, **dump_options: Any) -> pathlib.Path:
    return write_text(path, json.dumps(value, **dump_options))


def save_npz(path: str | os.PathLike, *, compressed: bool = False,
             **arrays: np.ndarray) -> pathlib.Path:
    """`numpy.savez` (or `savez_compressed`) to `path`, atomically."""
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return write_bytes(path, buffer.getvalue())


def save_npy(path: str | os.PathLike, array: np.ndarray) -> pathlib.Path:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return write_bytes(path, buffer.getvalue())


@contextlib.contextmanager
def staged_folder(root: str | os.PathLike) -> Iterator[pathlib.Path]:
    """Yields an empty hidden sibling folder of `root`, renamed to `root` when the block ends
    without an error and removed when it raises. Raises `FileExistsError` if `root` exists
    before the block; if another process renamed a folder to `root` while the block ran, that
    folder is kept and ours is removed."""
    root = pathlib.Path(root).absolute()
    if root.exists():
        raise FileExistsError(f"{root} already exists")
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
    try:
        os.chmod(staging, 0o755)  # mkdtemp makes it private; a dataset is ordinary data
        yield staging
        try:
            os.rename(staging, root)
        except OSError:
            if not root.is_dir():
                raise
            shutil.rmtree(staging, ignore_errors=True)  # another process finished first
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextlib.contextmanager
def replaced_folder(root: str | os.PathLike) -> Iterator[pathlib.Path]:
    """Yields an empty hidden sibling folder of `root` that replaces `root` when the block ends
    without an error (the old folder is renamed aside, the new one renamed into place, then the
    old one removed: a reader sees the old folder or the new one, never a mix) and is removed
    when it raises."""
    root = pathlib.Path(root).absolute()
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
    try:
        os.chmod(staging, 0o755)
        yield staging
        old = root.parent / f".{root.name}.old-{uuid.uuid4().hex}"
        if root.exists():
            os.rename(root, old)
        os.rename(staging, root)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
