"""jaxtl's cache folder: demo datasets, index caches of the readers, compiled programs.

The folder is `data.cache_dir`, else `$JAXTL_CACHE`, else `~/.cache/jaxtl`. What a reader derives
from a dataset once (CoNSeP's patches, BigEarthNet's labels) is stored under a name that hashes
everything it depends on (`keyed_path`), so a changed input gets a new entry instead of a stale
one, and is written with `jaxtl.core.atomic` so that concurrent runs never see it half-written.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
from collections.abc import Mapping
from typing import Any

import ml_collections

KEY_LENGTH = 20  # hex digits of the SHA-256 of an entry's description


def cache_root(config: ml_collections.ConfigDict) -> pathlib.Path:
    if config.data.cache_dir:
        return pathlib.Path(config.data.cache_dir).expanduser()
    return default_cache_root()


def default_cache_root() -> pathlib.Path:
    """The cache folder without a config: `$JAXTL_CACHE`, else `~/.cache/jaxtl`."""
    if env := os.environ.get("JAXTL_CACHE"):
        return pathlib.Path(env).expanduser()
    return pathlib.Path.home() / ".cache" / "jaxtl"


def keyed_path(cache_dir: str | os.PathLike, dataset: str, description: Mapping[str, Any],
               prefix: str = "", suffix: str = "") -> pathlib.Path:
    """`<cache_dir>/<dataset>/<prefix><hash of description><suffix>`."""
    digest = hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()
    return pathlib.Path(cache_dir) / dataset / f"{prefix}{digest[:KEY_LENGTH]}{suffix}"
