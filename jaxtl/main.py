"""Entry point: python -m jaxtl.main --config configs/eyepacs.py --workdir runs/eyepacs

Config values are overridden with --config.section.key=value. On several hosts pass
--coordinator_address, --num_processes and --process_id (or --distributed on Cloud TPU / SLURM,
where JAX finds them itself).
"""

from __future__ import annotations

import logging as pylogging
import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from jaxtl.errors import UserError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for checkpoints, metrics and results; "
                               "running again on the same folder resumes the run.")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() with "
                                 "the cluster settings JAX detects (Cloud TPU, SLURM, ...).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0, for "
                                   "multi-host runs on machines JAX cannot detect.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes (hosts).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Index of this process.")

flags.mark_flags_as_required(["config", "workdir"])


def initialize_distributed() -> None:
    if _COORDINATOR.value is not None:
        # CPU hosts need a collectives backend for cross-process arrays; GPUs and TPUs ignore it.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    elif _DISTRIBUTED.value:
        jax.distributed.initialize()


def quiet_library_logs() -> None:
    """Orbax and Grain log every checkpoint step at INFO; keep their warnings, drop the rest."""

    def keep(record: pylogging.LogRecord) -> bool:
        noisy = any(part in record.pathname for part in ("/orbax/", "/grain/"))
        return record.levelno >= pylogging.WARNING or not noisy

    logging.get_absl_handler().addFilter(keep)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    quiet_library_logs()
    initialize_distributed()
    from jaxtl import compile_cache, train  # after distributed init: may touch JAX backends
    from jaxtl.data import prepare

    # Before the first compilation: runs with the same programs (a sweep) reuse the executables.
    compile_cache.enable(prepare.cache_dir(_CONFIG.value))

    try:
        train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    except UserError as error:
        logging.error("%s", error)
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main)
