"""Runs the programs of tests/programs.py: reads their commands as JSON on stdin, forks a child
per command after importing jaxtl once, writes their exit codes and output as JSON on stdout."""

from __future__ import annotations

import json
import os
import runpy
import sys
import tempfile

import jaxtl.config.validation  # noqa: F401 - imported once here, shared by every child
import jaxtl.training.loop  # noqa: F401


def run_child(module: str, argv: list[str], env: dict[str, str], out: int, err: int) -> None:
    os.dup2(out, 1)
    os.dup2(err, 2)
    os.environ.update(env)
    sys.argv = [module, *argv]
    code = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:  # noqa: BLE001 - reported like the interpreter would
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    runs = []
    for command in json.load(sys.stdin):
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            pid = os.fork()
            if pid == 0:
                run_child(command["module"], command["argv"], command["env"], out.fileno(),
                          err.fileno())
            _, status = os.waitpid(pid, 0)
            out.seek(0)
            err.seek(0)
            runs.append({"command": " ".join(["python -m", command["module"],
                                              *command["argv"]]),
                         "returncode": os.waitstatus_to_exitcode(status),
                         "stdout": out.read().decode(errors="replace"),
                         "stderr": err.read().decode(errors="replace")})
    json.dump(runs, sys.stdout)


if __name__ == "__main__":
    main()
