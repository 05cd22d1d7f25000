"""Where a result came from: the git commit of the jaxtl checkout that produced it, the
versions of the packages that compute it, and the platform it ran on."""

from __future__ import annotations

import importlib.metadata
import pathlib
import platform
import subprocess
from typing import Any

import jax

_PACKAGE_ROOT = pathlib.Path(__file__).resolve().parent.parent
# The distributions whose versions change a run's numbers (a results.json's `versions`).
RECORDED_PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain", "numpy",
                     "scipy", "scikit-learn", "pillow")


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


def package_versions() -> dict[str, str | None]:
    """{distribution: installed version or None} of the `RECORDED_PACKAGES`."""
    versions: dict[str, str | None] = {}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def platform_record() -> dict[str, Any]:
    """The machine and accelerator a run ran on."""
    device = jax.devices()[0]
    return {"python": platform.python_version(), "system": platform.platform(),
            "machine": platform.machine(), "jax_backend": jax.default_backend(),
            "device_kind": device.device_kind, "device_count": jax.device_count(),
            "process_count": jax.process_count()}


def environment() -> dict[str, Any]:
    """{'versions': package_versions(), 'platform': platform_record()}: what results.json
    records beside the git commit, so that a figure can be reproduced in the same
    environment (requirements.lock pins it)."""
    return {"versions": package_versions(), "platform": platform_record()}
