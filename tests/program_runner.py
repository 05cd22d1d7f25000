"""Runs the programs of tests/programs.py: imports jaxtl once, then reads batches of commands,
one JSON list a line on stdin, forks a child per command and writes each batch's exit codes
and output as one JSON line on stdout, until stdin ends."""

from __future__ import annotations

import json
import os
import runpy
import sys
import tempfile

import sklearn.metrics  # noqa: F401 - what a run's evaluation imports (jaxtl.metrics)

import jaxtl.config.validation  # imported once here, shared by every child
import jaxtl.training.loop  # noqa: F401
from jaxtl.data import registry

registry.names()  # the built-in dataset packages, which each config loads (0.4 s)


def run_child(module: str, argv: list[str], env: dict[str, str], out: int, err: int) -> None:
    """Runs `python -m module argv...` (or `python script.py argv...` where `module` ends in
    .py) in this forked child, its stdout and stderr on `out` and `err`; never returns."""
    os.dup2(out, 1)
    os.dup2(err, 2)
    os.environ.update(env)
    # as the interpreter reads PYTHONPATH at its start: its folders before the installed ones
    sys.path[1:1] = [folder for folder in env.get("PYTHONPATH", "").split(os.pathsep) if folder]
    sys.argv = [module, *argv]
    code = 0
    try:
        if module.endswith(".py"):  # as the interpreter runs a script: its folder first
            sys.path.insert(0, os.path.dirname(os.path.abspath(module)))
            runpy.run_path(module, run_name="__main__")
        else:
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


def run_batch(commands: list[dict]) -> list[dict]:
    runs = []
    for command in commands:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                # stdin is the parent's command stream: a program reads an empty one
                os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
                run_child(command["module"], command["argv"], command["env"], out.fileno(),
                          err.fileno())
            _, status = os.waitpid(pid, 0)
            out.seek(0)
            err.seek(0)
            program = (["python", command["module"]] if command["module"].endswith(".py")
                       else ["python -m", command["module"]])
            runs.append({"command": " ".join([*program, *command["argv"]]),
                         "returncode": os.waitstatus_to_exitcode(status),
                         "stdout": out.read().decode(errors="replace"),
                         "stderr": err.read().decode(errors="replace")})
    return runs


def main() -> None:
    for line in sys.stdin:
        sys.stdout.write(json.dumps(run_batch(json.loads(line))) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
