"""Which JAX platforms a jaxtl process uses.

With libtpu installed (the `tpu` extra, which the tests' environment installs to compile for
TPU topologies) every JAX process probes for a TPU at its first device call and, on a machine
without one, prints libtpu's warnings about TPU_ACCELERATOR_TYPE and TPU_WORKER_HOSTNAMES.
`skip_absent_tpu` leaves the TPU platform out where no TPU chip is attached and the user has
not chosen platforms (JAX_PLATFORMS); compiling for a TPU topology
(`jaxtl.engine.projection`) loads libtpu itself and works on the CPU platform.
"""

from __future__ import annotations

import importlib.util
import os

PLATFORMS_VARIABLE = "JAX_PLATFORMS"


def libtpu_installed() -> bool:
    return importlib.util.find_spec("libtpu") is not None


def tpu_attached() -> bool:
    """Whether a TPU chip is on this machine's PCI bus (JAX's own test, as its Cloud TPU
    start-up does)."""
    from jax._src import hardware_utils

    return hardware_utils.num_available_tpu_chips_and_device_id()[0] > 0


def gpu_platform_installed() -> bool:
    from jax._src import hardware_utils

    plugins = ("jax_cuda12_plugin", "jax_cuda13_plugin")
    return (any(importlib.util.find_spec(name) is not None for name in plugins)
            and hardware_utils.has_visible_nvidia_gpu())


def skip_absent_tpu() -> str | None:
    """Before JAX's first device call: without a TPU chip and with libtpu installed, the
    platforms are the others (CUDA where it is installed and a GPU visible, and the CPU);
    returns what it set, or None where it changed nothing (JAX_PLATFORMS set, a TPU here,
    or no libtpu)."""
    if os.environ.get(PLATFORMS_VARIABLE) or not libtpu_installed() or tpu_attached():
        return None
    import jax

    platforms = ",".join((*(("cuda",) if gpu_platform_installed() else ()), "cpu"))
    os.environ[PLATFORMS_VARIABLE] = platforms  # and the programs this process starts
    jax.config.update("jax_platforms", platforms)
    return platforms
