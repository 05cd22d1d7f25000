"""Many program runs in one test, each as the shell runs it, for the price of one JAX import.

`run_programs(commands)` starts one Python process (tests/program_runner.py) that imports jaxtl
and JAX once and then forks a child per command; the child runs the program's module as
`python -m MODULE ARGS...` would (`runpy`, argv, its own stdout and stderr) and the parent
records its exit code and output. A command is (module, argv) or (module, argv, environment
overrides). JAX's backend is never started in the parent, so the children are clean processes
in all that a program touches.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Mapping, Sequence

REPO = pathlib.Path(__file__).resolve().parents[1]
RUNNER = pathlib.Path(__file__).with_name("program_runner.py")


@dataclasses.dataclass(frozen=True)
class ProgramRun:
    command: str
    returncode: int
    stdout: str
    stderr: str

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.stderr


def run_programs(commands: Sequence[tuple], env: Mapping[str, str] | None = None,
                 timeout: float = 900) -> list[ProgramRun]:
    payload = [{"module": command[0], "argv": list(command[1]),
                "env": dict(command[2]) if len(command) > 2 else {}} for command in commands]
    result = subprocess.run([sys.executable, str(RUNNER)], input=json.dumps(payload),
                            capture_output=True, text=True, timeout=timeout, cwd=REPO,
                            env=dict(os.environ, **(env or {})))
    assert result.returncode == 0, result.stderr[-3000:]
    return [ProgramRun(**run) for run in json.loads(result.stdout)]
