"""The shape of every jaxtl program (`python -m jaxtl.<command>`).

A program module defines its flags in a function (so that importing the module, as tests and
other programs do, defines none), a `main(argv, options)` and, at its end,

    if __name__ == "__main__":
        cli.run(main, define_flags, required=("config", "workdir"))

Flags are absl flags; a config file is `--config path.py[:arg]` with `--config.section.key=value`
overrides (`config_flag`). A `jaxtl.errors.UserError` raised anywhere in `main` ends the program
with one line on stderr, `error: <what is wrong and what to do>`, and exit code 2, no traceback;
`main` may return an exit code.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence

from absl import app, flags
from ml_collections import config_flags

from jaxtl.errors import UserError

Options = Mapping[str, flags.FlagHolder]
USER_ERROR_EXIT_CODE = 2


def config_flag(help_text: str = "Config file (configs/*.py), with --config.KEY=VALUE "
                                  "overrides.") -> flags.FlagHolder:
    return config_flags.DEFINE_config_file("config", None, help_text, lock_config=True)


def fail(message: str) -> None:
    """Ends the program as a user error: one line on stderr, exit code 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(USER_ERROR_EXIT_CODE)


def run(main: Callable[[list[str], Options], int | None],
        define_flags: Callable[[], Options], *, required: Sequence[str] = (),
        positional: str | None = None) -> None:
    """Defines the flags, parses the command line and calls `main(argv, options)`.

    `positional` names what the program takes after its flags (e.g. "SWEEP_DIR"); without it,
    any argument that is not a flag is a usage error.
    """
    options = define_flags()
    flags.mark_flags_as_required(list(required))

    def call(argv: list[str]) -> None:
        if positional is None and len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
        try:
            status = main(argv, options)
        except UserError as error:
            fail(str(error))
        sys.exit(status or 0)

    app.run(call)
