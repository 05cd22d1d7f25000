"""The logging policy of every jaxtl program: jaxtl's own lines at INFO, other libraries'
INFO (Orbax, Grain, TFDS, absl, JAX's backend probe) only with `--verbosity=1` or more, and
JAX told to probe only the platforms that can be present.

`jaxtl.commands.cli.run` applies it to every program before its flags are parsed: `quiet_others`
on absl's handler (the one every Python logger writes through in an absl program), and
`choose_platforms` before JAX starts a backend. Warnings and errors of every library stay.
"""

from __future__ import annotations

import glob
import importlib.metadata
import importlib.util
import logging as pylogging
import os
import pathlib
from collections.abc import Callable, Iterable, Mapping

from absl import logging

# absl verbosity (--verbosity / -v) from which other libraries' INFO lines are shown: 0 is INFO
# (the default), 1 is DEBUG.
OTHERS_INFO_VERBOSITY = 1
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # jaxtl/
# Where TPU chips show up on a machine (PCI vendor of Google, the accel and vfio devices of TPU
# VMs) and the variables Cloud TPU sets: any of them and JAX keeps its own probing.
GOOGLE_PCI_VENDOR = "0x1ae0"
TPU_DEVICE_PATTERNS = ("/dev/accel*", "/dev/vfio/[0-9]*")
TPU_ENVIRONMENT = ("TPU_NAME", "TPU_ACCELERATOR_TYPE", "TPU_WORKER_HOSTNAMES", "TPU_SKIP_MDS_QUERY")
CPU_ONLY = "cpu"


def is_jaxtl_record(record: pylogging.LogRecord) -> bool:
    """Whether a log record comes from jaxtl's own code (or a program run as __main__ from it)."""
    return os.path.abspath(record.pathname).startswith(PACKAGE_DIR + os.sep)


def keep_record(record: pylogging.LogRecord, verbosity: int) -> bool:
    """jaxtl's lines at every level, other libraries' from WARNING up (all of them from
    `OTHERS_INFO_VERBOSITY`)."""
    return (record.levelno >= pylogging.WARNING or verbosity >= OTHERS_INFO_VERBOSITY
            or is_jaxtl_record(record))


def keep_by_verbosity(record: pylogging.LogRecord) -> bool:
    """`keep_record` at the program's --verbosity (read per line: flags are parsed later)."""
    return keep_record(record, logging.get_verbosity())


def quiet_others(handler: pylogging.Handler | None = None) -> None:
    """Drops other libraries' INFO and DEBUG lines from `handler` (absl's by default) unless the
    program's --verbosity asks for them; adding it twice adds it once."""
    (handler or logging.get_absl_handler()).addFilter(keep_by_verbosity)


def gpu_plugins() -> list[str]:
    """The JAX PJRT plugins installed (CUDA, ROCm, ...): packages JAX discovers by their
    `jax_plugins` entry points or as modules of the `jax_plugins` namespace."""
    names = [entry.name for entry in importlib.metadata.entry_points(group="jax_plugins")]
    if importlib.util.find_spec("jax_plugins") is not None:
        import jax_plugins  # noqa: PLC0415 - a namespace package, present only with a plugin

        names += [path.name for entry in jax_plugins.__path__
                  for path in pathlib.Path(entry).iterdir() if not path.name.startswith("_")]
    return sorted(set(names))


def tpu_may_be_present(environ: Mapping[str, str], paths: Callable[[str], Iterable[str]] = glob.glob,
                       read: Callable[[str], str] = lambda p: pathlib.Path(p).read_text()) -> bool:
    """Whether this machine may have a TPU: a Google PCI device, a TPU device file or Cloud
    TPU's variables (generous: a TPU missed here would make JAX run on the CPU)."""
    if any(environ.get(name) for name in TPU_ENVIRONMENT):
        return True
    if any(next(iter(paths(pattern)), None) for pattern in TPU_DEVICE_PATTERNS):
        return True
    for vendor in paths("/sys/bus/pci/devices/*/vendor"):
        try:
            if read(vendor).strip() == GOOGLE_PCI_VENDOR:
                return True
        except OSError:
            continue
    return False


def platforms_to_probe(environ: Mapping[str, str], plugins: Iterable[str], libtpu: bool,
                       tpu_present: bool) -> str | None:
    """The value for jax_platforms: "cpu" when JAX could only ever run on the CPU (no GPU
    plugin, and no libtpu with a TPU to drive), so that it does not try (and log a failure for)
    the TPU backend; None (JAX's own probing) otherwise, and whenever JAX_PLATFORMS is set, even
    to '' (the user's choice)."""
    if "JAX_PLATFORMS" in environ or list(plugins) or (libtpu and tpu_present):
        return None
    return CPU_ONLY


def choose_platforms(environ: Mapping[str, str] = os.environ) -> str | None:
    """Sets jax_platforms as `platforms_to_probe` says (before JAX starts a backend, and only
    when no one set it); returns what it set."""
    import jax

    if jax.config.jax_platforms:
        return None
    libtpu = importlib.util.find_spec("libtpu") is not None
    chosen = platforms_to_probe(environ, gpu_plugins(), libtpu,
                                libtpu and tpu_may_be_present(environ))
    if chosen is not None:
        jax.config.update("jax_platforms", chosen)
    return chosen
