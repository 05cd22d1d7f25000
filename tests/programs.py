"""Many program runs in one test, each as the shell runs it, for the price of one JAX import.

`run_programs(commands)` hands the commands to a Python process (tests/program_runner.py) that
imports jaxtl and JAX once and then forks a child per command; the child runs the program's
module as `python -m MODULE ARGS...` would (`runpy`, argv, its own stdout and stderr; a module
ending in .py runs as `python PATH ARGS...`) and the runner records its exit code and output.
A command is (module, argv) or (module, argv, environment overrides). JAX's backend is never
started in the runner, so the children are clean processes in all that a program touches.

The runner stays up for the next call of this test process (every test of a pytest worker)
started with the same environment (the caller's os.environ with `env`, as the runner imports
JAX with it): one jaxtl import per worker, not one per call.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import pathlib
import re
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence

REPO = pathlib.Path(__file__).resolve().parents[1]
RUNNER = pathlib.Path(__file__).with_name("program_runner.py")
CURRENT_TEST = "PYTEST_CURRENT_TEST"
MAX_RUNNERS = 2  # runners kept up at once (each holds a jaxtl import: a few hundred MB)


@dataclasses.dataclass(frozen=True)
class ProgramRun:
    command: str
    returncode: int
    stdout: str
    stderr: str

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.stderr


class _Runner:
    """A tests/program_runner.py process: one batch of commands a line in, one line out."""

    def __init__(self, environ: dict[str, str]) -> None:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - open while the runner lives
        self.process = subprocess.Popen([sys.executable, str(RUNNER)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self._stderr, cwd=REPO,
                                        env=environ)

    def run(self, payload: list[dict], timeout: float) -> list[dict]:
        self.process.stdin.write(json.dumps(payload).encode() + b"\n")
        self.process.stdin.flush()
        reply, deadline = b"", time.monotonic() + timeout
        descriptor = self.process.stdout.fileno()
        while not reply.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.close()
                raise subprocess.TimeoutExpired(self.process.args, timeout)
            if select.select([descriptor], [], [], remaining)[0]:
                chunk = os.read(descriptor, 1 << 20)
                if not chunk:  # the runner died
                    self.process.wait()
                    self._stderr.seek(0)
                    raise AssertionError(f"the program runner exited with "
                                         f"{self.process.returncode}: "
                                         f"{self._stderr.read().decode(errors='replace')[-3000:]}")
                reply += chunk
        return json.loads(reply)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._stderr.close()


_RUNNERS: dict[tuple, _Runner] = {}  # by environment, the most recently used last


@atexit.register
def _close_runners() -> None:
    while _RUNNERS:
        _RUNNERS.popitem()[1].close()


def run_programs(commands: Sequence[tuple], env: Mapping[str, str] | None = None,
                 timeout: float = 900) -> list[ProgramRun]:
    payload = [{"module": command[0], "argv": list(command[1]),
                "env": dict(command[2]) if len(command) > 2 else {}} for command in commands]
    environ = dict(os.environ, **(env or {}))
    # pytest names the running test in the environment: each child gets its current value
    current_test = environ.pop(CURRENT_TEST, None)
    if current_test is not None:
        payload = [{**command, "env": {CURRENT_TEST: current_test, **command["env"]}}
                   for command in payload]
    key = tuple(sorted(environ.items()))
    runner = _RUNNERS.pop(key, None)
    if runner is None or runner.process.poll() is not None:
        while len(_RUNNERS) >= MAX_RUNNERS:
            _RUNNERS.pop(next(iter(_RUNNERS))).close()
        runner = _Runner(environ)
    runs = runner.run(payload, timeout)  # a runner that failed or timed out is not kept
    _RUNNERS[key] = runner
    return [ProgramRun(**run) for run in runs]


JAXTL_SOURCE_FILES = frozenset(path.name for path in (REPO / "jaxtl").rglob("*.py"))
LOG_LINE = re.compile(r"^(?P<level>[IWEF])\d{4} [\d:.]+\s+\d+ (?P<file>[^:\]]+):\d+\] ")


def other_libraries_info(output: str) -> list[str]:
    """The INFO lines of `output` (absl's format: `I1206 14:43:20.75 123 file.py:12] ...`) that
    no jaxtl file wrote (JAX's backend probe, Orbax, Grain, TFDS): the logging policy drops
    them unless --verbosity asks."""
    return [line for line in output.splitlines()
            if (match := LOG_LINE.match(line)) and match["level"] == "I"
            and match["file"] not in JAXTL_SOURCE_FILES]
