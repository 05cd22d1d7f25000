"""Entry point: python -m jaxtl.main --config configs/eyepacs.py --workdir runs/eyepacs

Config values are overridden with --config.section.key=value. On several hosts pass
--coordinator_address, --num_processes and --process_id (or --distributed on Cloud TPU / SLURM,
where JAX finds them itself). A run refused before it saved a checkpoint (no data at
data.root, an init checkpoint that does not fit, ...) leaves no folder it created.
"""

from __future__ import annotations

import contextlib
import logging as pylogging
import os
import pathlib
import shutil
from collections.abc import Iterator, Mapping

import jax
from absl import flags, logging

from jaxtl.commands import cli
from jaxtl.core.errors import UserError, WorkdirConflict
from jaxtl.core.preemption import stop_with_parent
from jaxtl.workdir import files as rundir


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


def cluster_size(environ: Mapping[str, str]) -> tuple[str, int] | None:
    """(scheduler, processes) of a multi-process job that JAX can join by itself, read from
    the environment its scheduler sets; None for a single process."""
    candidates = (("SLURM", environ.get("SLURM_STEP_NUM_TASKS") or environ.get("SLURM_NTASKS")
                   if "SLURM_JOB_ID" in environ else None),
                  ("Open MPI", environ.get("OMPI_COMM_WORLD_SIZE")),
                  ("a TPU slice on GKE", str(len(environ["TPU_WORKER_HOSTNAMES"].split(",")))
                   if environ.get("TPU_WORKER_HOSTNAMES") else None))
    for scheduler, processes in candidates:
        if processes and processes.isdigit() and int(processes) > 1:
            return scheduler, int(processes)
    return None


def initialize_distributed(options: cli.Options) -> None:
    """Joins the processes of a multi-host run: as told (--coordinator_address, --distributed)
    or, in a job whose scheduler started several processes, by itself (never N independent
    process-0s writing one workdir)."""
    if options["coordinator_address"].value is not None:
        # CPU hosts need a collectives backend for cross-process arrays; GPUs and TPUs ignore it.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(options["coordinator_address"].value,
                                   options["num_processes"].value, options["process_id"].value)
    elif options["distributed"].value:
        jax.distributed.initialize()
    elif (cluster := cluster_size(os.environ)) is not None:
        scheduler, processes = cluster
        logging.info("%s started %d processes: joining them with jax.distributed.initialize()",
                     scheduler, processes)
        try:
            jax.distributed.initialize()
        except (RuntimeError, ValueError) as error:
            raise UserError(f"{scheduler} started {processes} processes, but they could not be "
                            f"joined ({error}); pass --coordinator_address, --num_processes "
                            f"and --process_id, or start one process") from None


def tag_log_lines_with_the_host(process: int, processes: int) -> None:
    """On several hosts, every log line starts with `[host i/N]`."""
    if processes == 1:
        return
    tag = f"[host {process}/{processes}] "

    def add_tag(record: pylogging.LogRecord) -> bool:
        if not str(record.msg).startswith(tag):
            record.msg = tag + str(record.msg)
        return True

    logging.get_absl_handler().addFilter(add_tag)


def first_missing(path: pathlib.Path) -> pathlib.Path | None:
    """The outermost folder of `path` (itself or an ancestor) that does not exist yet."""
    missing = None
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing = folder
    return missing


@contextlib.contextmanager
def removed_if_refused(workdir: pathlib.Path, writer: bool) -> Iterator[None]:
    """Removes the folders this run created for `workdir` when it stops with a UserError before
    its first checkpoint: nothing there to resume from or look at. Kept: a folder that existed
    (another run's, or one a concurrent start created: WorkdirConflict) and an unreadable
    image's marker (the same command then names the image at once)."""
    created = first_missing(workdir)
    try:
        yield
    except UserError as error:
        if (writer and created is not None and not isinstance(error, WorkdirConflict)
                and not rundir.has_checkpoints(workdir)
                and rundir.read_stopped_at(workdir) is None):
            shutil.rmtree(created, ignore_errors=True)
        raise


def check(argv: list[str], options: cli.Options) -> str:
    """--check: the config as the run would take it (demo settings applied) and the multi-host
    flags; the workdir is not read."""
    given = [name for name in ("coordinator_address", "num_processes", "process_id")
             if options[name].value is not None]
    if given and len(given) < 3:
        raise UserError(f"--{', --'.join(given)} given without the others: a multi-host run "
                        f"needs --coordinator_address, --num_processes and --process_id")
    return cli.check_config(argv, options, demo_run=True)


def main(argv: list[str], options: cli.Options) -> None:
    del argv
    stop_with_parent(os.environ)
    if options["coordinator_address"].value is not None:  # known before JAX logs its start
        tag_log_lines_with_the_host(options["process_id"].value, options["num_processes"].value)
    initialize_distributed(options)
    if options["coordinator_address"].value is None:
        tag_log_lines_with_the_host(jax.process_index(), jax.process_count())
    from jaxtl.core import compile_cache  # after distributed init: may touch JAX backends
    from jaxtl.data.cache import cache_root
    from jaxtl.training import loop as train

    # Before the first compilation: runs with the same programs (a sweep) reuse the executables.
    compile_cache.enable(cache_root(options["config"].value))
    workdir = pathlib.Path(options["workdir"].value).expanduser().absolute()
    with removed_if_refused(workdir, writer=jax.process_index() == 0):
        train.train_and_evaluate(options["config"].value, workdir,
                                 set_by_user=cli.config_overrides(options["config"]))


if __name__ == "__main__":
    cli.run(main, define_flags, required=("config", "workdir"), check=check)
