"""JAX's persistent compilation cache, so runs with the same programs do not compile again.

A sweep launches one process per run; without the cache each would compile its train and eval
steps from scratch. With it, a process finds the executables an earlier run with the same shapes
and settings compiled. JAX's default thresholds cache only programs that took at least a second
to compile; here every program is cached, since the small CPU programs of demo runs add up too.
"""

from __future__ import annotations

import pathlib

import jax

CACHE_SUBDIR = "jax-compilation"
# JAX options that cache every program (JAX's defaults skip fast compilations and small ones).
CACHE_EVERY_PROGRAM = {"jax_persistent_cache_min_compile_time_secs": 0.0,
                       "jax_persistent_cache_min_entry_size_bytes": -1}


def enable(cache_root: str | pathlib.Path) -> pathlib.Path:
    """Caches compiled programs under `cache_root`/jax-compilation; returns the folder in use.

    A folder the user already chose (JAX_COMPILATION_CACHE_DIR or jax.config) is kept. Call it
    before the first compilation of the process.
    """
    chosen = jax.config.jax_compilation_cache_dir
    path = pathlib.Path(chosen) if chosen else pathlib.Path(cache_root).expanduser() / CACHE_SUBDIR
    # JAX creates the folder at the first compilation, so a config error leaves nothing behind.
    jax.config.update("jax_compilation_cache_dir", str(path))
    for option, value in CACHE_EVERY_PROGRAM.items():
        jax.config.update(option, value)
    return path


def environment(folder: str | pathlib.Path) -> dict[str, str]:
    """The environment variables that make a JAX process started with them cache every program
    it compiles in `folder` (JAX reads each option from its upper-case name), as `enable` does
    in this one; `enable` keeps that folder."""
    return {"JAX_COMPILATION_CACHE_DIR": str(folder),
            **{option.upper(): str(value) for option, value in CACHE_EVERY_PROGRAM.items()}}
