"""Programs started one at a time as real processes, for the price of one jaxtl import: the
interrupted runs of tests/interrupted_runs.py, which a test signals (kill -9, SIGTERM) while
they run.

`Launcher` starts this file as a server that imports jaxtl and JAX once (JAX's backend is never
started in it) and then forks a child per program it is sent; the child runs the program's
module as `python -m MODULE ARGS...` would (tests/program_runner.py's `run_child`). `start`
returns a `ForkedProgram` that the test polls, signals and waits for like a
`subprocess.Popen`: its pid is the program's own, so a signal reaches the program itself.
A run that a test reads the whole output of (its logging policy) starts as a fresh
interpreter instead: what imports print would be the server's here.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import Self

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent


class ForkedProgram:
    """A program the launcher forked: the subset of `subprocess.Popen` the tests use."""

    def __init__(self, args: Sequence[str], pid: int, stderr: pathlib.Path) -> None:
        self.args = list(args)
        self.pid = pid
        self.returncode: int | None = None
        self._stderr = stderr
        self._exit = stderr.with_suffix(".exit")  # the server writes the exit code there

    def poll(self) -> int | None:
        if self.returncode is None and self._exit.is_file():
            self.returncode = int(self._exit.read_text())
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:  # exited and reaped since the poll
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.time() + timeout
        while self.poll() is None:
            if deadline is not None and time.time() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(0.02)
        return self.returncode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        self.wait(timeout)
        return "", self._stderr.read_text(errors="replace")


class Launcher:
    """The server process; `close` (or the end of a `with` block) stops it."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._folder = pathlib.Path(tempfile.mkdtemp(prefix="forked-runs-"))
        self._server = subprocess.Popen([sys.executable, str(pathlib.Path(__file__))],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, cwd=REPO, env=dict(env or os.environ))
        self._count = 0
        self._running: ForkedProgram | None = None

    def start(self, args: Sequence[str], env: Mapping[str, str] | None = None) -> ForkedProgram:
        """Starts `args` (`[python, "-m", module, *argv]`) with `env` on top of the server's
        environment; one program at a time."""
        if self._running is not None:
            self._running.wait()
        assert list(args[1:2]) == ["-m"], args
        self._count += 1
        stderr = self._folder / f"{self._count}.stderr"
        request = {"module": args[2], "argv": list(args[3:]), "env": dict(env or {}),
                   "stderr": str(stderr)}
        self._server.stdin.write(json.dumps(request) + "\n")
        self._server.stdin.flush()
        line = self._server.stdout.readline()
        assert line, "the launcher stopped"
        self._running = ForkedProgram(args, int(line), stderr)
        return self._running

    def run(self, args: Sequence[str], env: Mapping[str, str] | None = None,
            timeout: float = 900) -> subprocess.CompletedProcess:
        program = self.start(args, env)
        _, stderr = program.communicate(timeout)
        return subprocess.CompletedProcess(program.args, program.returncode, "", stderr)

    def close(self) -> None:
        if self._running is not None and self._running.poll() is None:
            self._running.kill()
            self._running.wait(60)
        self._server.stdin.close()
        self._server.wait(60)
        shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def serve() -> None:
    """Forks a child per request line on stdin, prints its pid, and writes its exit code
    next to its stderr once it has exited."""
    sys.path.insert(0, str(HERE))
    from program_runner import run_child  # imports jaxtl: shared by every child

    for line in sys.stdin:
        request = json.loads(line)
        stderr = pathlib.Path(request["stderr"])
        with open(os.devnull, "wb") as out, stderr.open("wb") as err:
            pid = os.fork()
            if pid == 0:
                sys.stdin.close()
                run_child(request["module"], request["argv"], request["env"], out.fileno(),
                          err.fileno())
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        written = stderr.with_suffix(".exit.tmp")
        written.write_text(str(os.waitstatus_to_exitcode(status)))
        written.rename(stderr.with_suffix(".exit"))


if __name__ == "__main__":
    serve()
