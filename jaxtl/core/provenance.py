"""Where a result came from: the git commit of the jaxtl checkout that produced it."""

from __future__ import annotations

import pathlib
import subprocess

_PACKAGE_ROOT = pathlib.Path(__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(["git", *args], cwd=_PACKAGE_ROOT, capture_output=True,
                                text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def git_commit() -> dict[str, str | bool | None]:
    """{'git_commit': HEAD or None, 'git_dirty': uncommitted changes to tracked files or None}.

    None when jaxtl is not imported from a git checkout (an installed wheel) or git is missing.
    """
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return {"git_commit": None, "git_dirty": None}
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}
