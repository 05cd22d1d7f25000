"""The shape of every jaxtl program (`python -m jaxtl.<command>`).

A program module defines its flags in a function (so that importing the module, as tests and
other programs do, defines none), a `main(argv, options)` and, at its end,

    if __name__ == "__main__":
        cli.run(main, define_flags, required=("config", "workdir"))

Flags are absl flags; a config file is `--config path.py[:arg]` with `--config.section.key=value`
overrides (`config_flag`). Whatever stops a program early says so in one line on stderr,
`error: <what is wrong and what to do>`, with no traceback: a command line that does not parse
(an unknown flag or config key, a value of the wrong type, a config file that does not exist
or does not load) and a `jaxtl.core.errors.UserError` exit with code 2; the other
`jaxtl.core.errors.Stop`s with their own code (3: training diverged; 143: stopped by SIGTERM with a
checkpoint to resume from). `main` may return an exit code.

Every program also takes `--check`: the command line is parsed, the config loaded with its
overrides and validated, and the program's own `check(argv, options)` (what it would refuse
before working) runs; then it prints `ok: ...` and exits 0, without reading data, building a
model or compiling. It reads no data and no run folder (they may not exist yet where a command
is documented after the one that writes them). tests/test_documented_commands.py runs every
documented command this way.

Every program logs by one policy (jaxtl.core.logs): jaxtl's own lines at INFO, other libraries'
INFO lines only with `--verbosity=1`, and JAX probing only the platforms that can be present.
Progress is a bar on a terminal and plain periodic lines in a file or pipe (jaxtl.core.progress).
"""

from __future__ import annotations

import faulthandler
import re
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from absl import app, flags
from ml_collections import config_flags

from jaxtl.core import logs, platforms
from jaxtl.core.errors import Stop, UserError

# Every program prints every thread's Python stack on stderr when it gets this signal.
STACKS_SIGNAL = "SIGUSR1"

Options = Mapping[str, flags.FlagHolder]
Check = Callable[[list[str], Options], str]
USER_ERROR_EXIT_CODE = UserError.exit_code
CONFIG_FLAG = "config"
CHECK_FLAG = "check"
_OVERRIDE = re.compile(r"^--config\.([\w.]+)(?:=(.*))?$")


def config_flag(help_text: str = "Config file (configs/*.py), with --config.KEY=VALUE "
                                  "overrides.") -> flags.FlagHolder:
    return config_flags.DEFINE_config_file(CONFIG_FLAG, None, help_text, lock_config=True)


def config_overrides(holder: flags.FlagHolder) -> dict[str, Any]:
    """The config values the command line set (`--config.section.key=value`), by key."""
    return dict(config_flags.get_override_values(flags.FLAGS[holder.name]))


def fail(message: str, exit_code: int = USER_ERROR_EXIT_CODE) -> None:
    """Ends the program: one line on stderr, `exit_code`."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(exit_code)


_RAISED_USER_ERROR = re.compile(r"^jaxtl\.core\.errors\.\w*Error: (.*)$")


def _user_error_in(error: BaseException) -> UserError | None:
    """The UserError that caused `error` (a config file's get_config raised it), if any."""
    seen = error
    while seen is not None:
        if isinstance(seen, UserError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _config_spec(argv: Sequence[str]) -> str | None:
    for index, arg in enumerate(argv):
        if arg.startswith("--config="):
            return arg.removeprefix("--config=")
        if arg == "--config" and index + 1 < len(argv):
            return argv[index + 1]
    return None


def _unknown_overrides(argv: Sequence[str]) -> list[tuple[str, str]]:
    """(argument, what is wrong) for each `--config.KEY=VALUE` whose KEY the config file does
    not have, naming the closest key it has."""
    from jaxtl.config.base import flatten
    from jaxtl.config.files import load_config
    from jaxtl.core.settings import unknown_setting

    spec = _config_spec(argv)
    try:
        config = load_config(spec) if spec else None
    except Exception:  # noqa: BLE001 - the config file itself is the problem; said elsewhere
        return []
    unknown = []
    for arg in argv:
        match = _OVERRIDE.match(arg)
        if match is None or config is None:
            continue
        node: Any = config
        for part in match.group(1).split("."):
            if not hasattr(node, "keys") or part not in node:
                known = [key for key, _ in flatten(config)]
                unknown.append((arg, unknown_setting(match.group(1), known)))
                break
            node = node[part]
    return unknown


def parse_problem(error: BaseException, argv: Sequence[str]) -> str:
    """One line saying why the command line `argv` did not parse."""
    # ml_collections re-raises a config file's exception as text, its traceback included:
    # the file's own one-line error is the last line
    cause = _user_error_in(error)
    for text in (str(cause or ""), str(error)):
        last_line = text.strip().splitlines()[-1] if text.strip() else ""
        if match := _RAISED_USER_ERROR.match(last_line):
            return match.group(1)
    if cause is not None:
        return str(cause)
    if unknown := _unknown_overrides(argv):
        return "; ".join(f"{arg}: {problem}" for arg, problem in unknown)
    text = str(error)
    config_problem = ("Failed loading config file" in text or "parsing config file" in text
                      or isinstance(error, (OSError, SyntaxError)))
    if config_problem:
        spec = _config_spec(argv)
        detail = (f"line {error.lineno}: {error.msg}" if isinstance(error, SyntaxError)
                  else text.strip().splitlines()[-1].strip())
        return (f"--config {spec}: the config file does not load ({detail}); check the path "
                f"(relative to the folder you run from) and the file")
    if isinstance(error, flags.UnrecognizedFlagError):
        return f"unknown flag --{error.flagname}; --helpshort lists this program's flags"
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return first.removeprefix("flag ")


def _parse(argv: list[str]) -> list[str]:
    try:
        remaining = flags.FLAGS(argv)
        if CONFIG_FLAG in flags.FLAGS and not isinstance(
                config := flags.FLAGS[CONFIG_FLAG].value, (str, type(None))):
            config.keys()  # a config file (loaded lazily) that failed to load says so now
    except Exception as error:  # noqa: BLE001 - every way a command line fails: one line
        fail(parse_problem(error, argv))
        raise  # not reached: fail exits
    return remaining


def check_config(argv: list[str], options: Options, *, demo_run: bool = False) -> str:
    """Validates the program's config, if it takes one; with `demo_run`, also the switch of a
    config without data to the demo settings (which refuses to replace a value the command line
    set), as programs that train or score do. Returns what was checked, for `ok: ...`."""
    del argv
    if CONFIG_FLAG not in options or not hasattr(options[CONFIG_FLAG].value, "keys"):
        return "the command line parses"
    from jaxtl import optim
    from jaxtl.config import demo_settings, validation

    config = options[CONFIG_FLAG].value
    spec = validation.dataset_spec(config)
    where = "its data root"
    if demo_run:
        notes = demo_settings.apply(config, config_overrides(options[CONFIG_FLAG]), spec)
        where = "demo data" if notes else where
    validation.validate(config, spec)  # once, on the config the program would run with
    optim.resolve_lr(config, config_overrides(options[CONFIG_FLAG]))
    return f"the command line parses; config {config.dataset} is valid ({where})"


def run(main: Callable[[list[str], Options], int | None],
        define_flags: Callable[[], Options], *, required: Sequence[str] = (),
        positional: str | None = None, check: Check = check_config) -> None:
    """Defines the flags, parses the command line and calls `main(argv, options)`, or with
    `--check`, `check(argv, options)` (see the module's docstring).

    `positional` names what the program takes after its flags (e.g. "SWEEP_DIR"); without it,
    any argument that is not a flag is a usage error. Without a TPU attached, an installed
    libtpu is not probed (jaxtl.core.platforms.skip_absent_tpu).
    """
    logs.quiet_others()
    platforms.skip_absent_tpu()  # before anything starts a JAX backend
    if hasattr(signal, STACKS_SIGNAL):  # `kill -USR1 PID`: where a stuck program is
        faulthandler.register(getattr(signal, STACKS_SIGNAL), all_threads=True)
    options = define_flags()
    checking = flags.DEFINE_bool(CHECK_FLAG, False, "Check the command line and the config, "
                                 "print 'ok: ...' and exit; reads no data, compiles nothing.")
    flags.mark_flags_as_required(list(required))

    def call(argv: list[str]) -> None:
        if positional is None and len(argv) > 1:
            fail(f"unexpected arguments: {' '.join(argv[1:])}")
        try:
            if checking.value:
                print(f"ok: {check(argv, options)}")
                sys.exit(0)
            status = main(argv, options)
        except Stop as error:
            fail(str(error), error.exit_code)
        sys.exit(status or 0)

    app.run(call, flags_parser=_parse)
