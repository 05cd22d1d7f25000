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
import re
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


JAXTL_SOURCE_FILES = frozenset(path.name for path in (REPO / "jaxtl").rglob("*.py"))
LOG_LINE = re.compile(r"^(?P<level>[IWEF])\d{4} [\d:.]+\s+\d+ (?P<file>[^:\]]+):\d+\] ")


def other_libraries_info(output: str) -> list[str]:
    """The INFO lines of `output` (absl's format: `I1206 14:43:20.75 123 file.py:12] ...`) that
    no jaxtl file wrote (JAX's backend probe, Orbax, Grain, TFDS): the logging policy drops
    them unless --verbosity asks."""
    return [line for line in output.splitlines()
            if (match := LOG_LINE.match(line)) and match["level"] == "I"
            and match["file"] not in JAXTL_SOURCE_FILES]
