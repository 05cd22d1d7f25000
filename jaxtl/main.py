"""Entry point: python -m jaxtl.main --config configs/eyepacs.py --workdir runs/eyepacs

Config values are overridden with --config.section.key=value. On several hosts pass
--coordinator_address, --num_processes and --process_id (or --distributed on Cloud TPU / SLURM,
where JAX finds them itself).
"""

from __future__ import annotations

import logging as pylogging

import jax
from absl import flags, logging

from jaxtl import cli


def define_flags() -> cli.Options:
    return {
        "config": cli.config_flag("Experiment config file (configs/*.py)."),
        "workdir": flags.DEFINE_string("workdir", None, "Folder for checkpoints, metrics and "
                                       "results; running again on the same folder resumes the "
                                       "run."),
        "distributed": flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() "
                                         "with the cluster settings JAX detects (Cloud TPU, "
                                         "SLURM, ...)."),
        "coordinator_address": flags.DEFINE_string("coordinator_address", None, "host:port of "
                                                   "process 0, for multi-host runs on machines "
                                                   "JAX cannot detect."),
        "num_processes": flags.DEFINE_integer("num_processes", None,
                                              "Number of processes (hosts)."),
        "process_id": flags.DEFINE_integer("process_id", None, "Index of this process."),
    }


def initialize_distributed(options: cli.Options) -> None:
    if options["coordinator_address"].value is not None:
        # CPU hosts need a collectives backend for cross-process arrays; GPUs and TPUs ignore it.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(options["coordinator_address"].value,
                                   options["num_processes"].value, options["process_id"].value)
    elif options["distributed"].value:
        jax.distributed.initialize()


def quiet_library_logs() -> None:
    """Orbax and Grain log every checkpoint step at INFO; keep their warnings, drop the rest."""

    def keep(record: pylogging.LogRecord) -> bool:
        noisy = any(part in record.pathname for part in ("/orbax/", "/grain/"))
        return record.levelno >= pylogging.WARNING or not noisy

    logging.get_absl_handler().addFilter(keep)


def main(argv: list[str], options: cli.Options) -> None:
    del argv
    quiet_library_logs()
    initialize_distributed(options)
    from jaxtl import compile_cache, train  # after distributed init: may touch JAX backends
    from jaxtl.data.cache import cache_root

    # Before the first compilation: runs with the same programs (a sweep) reuse the executables.
    compile_cache.enable(cache_root(options["config"].value))
    train.train_and_evaluate(options["config"].value, options["workdir"].value)


if __name__ == "__main__":
    cli.run(main, define_flags, required=("config", "workdir"))
