"""Config files and sweep files: plain Python files given by path, as `path.py` or `path.py:arg`.

A config file defines `get_config(arg) -> ml_collections.ConfigDict`; a sweep file defines
`get_sweep(arg) -> jaxtl.sweep.Sweep`. Neither is part of an installed package: they are read
from wherever they are (relative paths from the folder you run in), as `--config` reads them.
"""

from __future__ import annotations

import importlib.util
import pathlib
import re
from types import ModuleType

import ml_collections

from jaxtl.core.errors import ConfigError


def split_spec(spec: str) -> tuple[str, str | None]:
    """'configs/x.py:arg' -> ('configs/x.py', 'arg'), as ml_collections config files take it."""
    path, sep, arg = spec.partition(":")
    return path, (arg if sep else None)


def load_module(path: str, what: str = "config file") -> ModuleType:
    """The Python file at `path`, executed."""
    file = pathlib.Path(path)
    if not file.is_file():
        raise ConfigError(f"{what} {path} does not exist; check the path (it is relative to the "
                          f"folder you run from, usually the repository root)")
    module_name = "_jaxtl_loaded_" + re.sub(r"\W", "_", str(file.resolve()))
    spec = importlib.util.spec_from_file_location(module_name, file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_config(spec: str) -> ml_collections.ConfigDict:
    """A fresh config from `get_config(arg)` of the config file `path.py[:arg]`."""
    path, arg = split_spec(spec)
    module = load_module(path)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"config file {path} defines no get_config(arg) function")
    return ml_collections.ConfigDict(module.get_config(arg).to_dict())
