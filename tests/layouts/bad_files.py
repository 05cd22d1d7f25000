"""Unreadable image files, as downloads have them: corrupt, truncated or empty."""

from __future__ import annotations

import pathlib

import numpy as np

BAD_KINDS = ("corrupt", "truncated", "empty")


def spoil(path: pathlib.Path, kind: str, seed: int = 0) -> pathlib.Path:
    """Replaces the image file at `path` by a bad one of `kind`: random bytes where the image
    was ('corrupt'), its first third ('truncated'), or nothing ('empty')."""
    data = path.read_bytes()
    if kind == "corrupt":
        data = np.random.default_rng(seed).integers(0, 256, len(data), np.uint8).tobytes()
    elif kind == "truncated":
        data = data[:len(data) // 3]
    elif kind == "empty":
        data = b""
    else:
        raise ValueError(f"unknown kind {kind!r}; one of {BAD_KINDS}")
    path.write_bytes(data)
    return path
