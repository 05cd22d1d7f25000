"""The logging policy of every jaxtl program: jaxtl's own lines at INFO, other libraries'
INFO (Orbax, Grain, TFDS, absl, JAX's backend probe) only with `--verbosity=1` or more.

`jaxtl.commands.cli.run` applies it to every program before its flags are parsed: `quiet_others`
on absl's handler (the one every Python logger writes through in an absl program). Warnings and
errors of every library stay. (Which platforms JAX probes: jaxtl.core.platforms.)
"""

from __future__ import annotations

import logging as pylogging
import os

from absl import logging

# absl verbosity (--verbosity / -v) from which other libraries' INFO lines are shown: 0 is INFO
# (the default), 1 is DEBUG.
OTHERS_INFO_VERBOSITY = 1
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # jaxtl/


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
