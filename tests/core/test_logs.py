"""The logging policy: jaxtl's lines kept, other libraries' INFO dropped unless --verbosity asks,
and JAX told to probe the CPU only when nothing else can be there."""

from __future__ import annotations

import io
import logging as pylogging
import pathlib

import pytest

import jaxtl
from jaxtl.core import logs

JAXTL_FILE = str(pathlib.Path(jaxtl.__file__).parent / "training" / "loop.py")
ORBAX_FILE = "/venv/lib/python3.11/site-packages/orbax/checkpoint/checkpointer.py"


def record(pathname: str, level: int) -> pylogging.LogRecord:
    return pylogging.LogRecord("absl", level, pathname, 1, "a line", None, None)


@pytest.mark.parametrize("pathname, level, verbosity, kept", [
    (JAXTL_FILE, pylogging.INFO, 0, True),
    (JAXTL_FILE, pylogging.DEBUG, 0, True),
    (ORBAX_FILE, pylogging.INFO, 0, False),
    (ORBAX_FILE, pylogging.INFO, -1, False),
    (ORBAX_FILE, pylogging.WARNING, 0, True),
    (ORBAX_FILE, pylogging.ERROR, -1, True),
    (ORBAX_FILE, pylogging.INFO, 1, True),   # --verbosity=1 shows them
    # a file beside the package whose path merely starts like it is not jaxtl's
    (str(pathlib.Path(jaxtl.__file__).parent) + "_extra/x.py", pylogging.INFO, 0, False),
])
def test_only_jaxtl_lines_below_warning(pathname, level, verbosity, kept):
    assert logs.keep_record(record(pathname, level), verbosity) is kept


def test_quiet_others_filters_a_handler_once():
    stream = io.StringIO()
    handler = pylogging.StreamHandler(stream)
    logs.quiet_others(handler)
    logs.quiet_others(handler)
    assert handler.filters == [logs.keep_by_verbosity]
    for pathname in (JAXTL_FILE, ORBAX_FILE):
        handler.handle(record(pathname, pylogging.INFO))
    handler.handle(record(ORBAX_FILE, pylogging.WARNING))
    assert stream.getvalue().splitlines() == ["a line", "a line"]  # jaxtl INFO, Orbax WARNING

