"""Writing a dataset folder all at once: an interrupted write never leaves a partial dataset."""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def staged_folder(root: str | pathlib.Path) -> Iterator[pathlib.Path]:
    """Yields an empty hidden sibling folder of `root`, renamed to `root` when the block ends
    without an error and removed when it raises. Raises `FileExistsError` if `root` exists."""
    root = pathlib.Path(root).absolute()
    if root.exists():
        raise FileExistsError(f"{root} already exists")
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
    try:
        os.chmod(staging, 0o755)  # mkdtemp makes it private; a dataset is ordinary data
        yield staging
        os.rename(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
