"""Why a program stops early. The entry points (jaxtl/commands/cli.py) print each as one line on stderr,
with no traceback, and exit with the error's `exit_code`."""

from __future__ import annotations


class Stop(Exception):
    """A run or command that ends before its work is done, for a reason it can state."""

    exit_code = 1


class UserError(Stop, ValueError):
    """Something the user can fix: the message says what is wrong and what to do."""

    exit_code = 2


class ConfigError(UserError):
    """The config names an unknown key or holds a value that is not allowed."""


class DataError(UserError):
    """A dataset on disk is missing, unreadable or not in the expected layout."""


class UnreadableImage(DataError):
    """An image file of a record that cannot be decoded (corrupt, truncated, empty)."""

    def __init__(self, message: str, image_id: str = "", path: str = ""):
        super().__init__(message)
        self.image_id, self.path = image_id, path

    def __reduce__(self):  # raised in Grain worker processes, re-raised in the main one
        return type(self), (str(self), self.image_id, self.path)


class WorkdirConflict(UserError):
    """The workdir holds a run with a different config, or another process is writing it."""


class TransferError(UserError):
    """An init checkpoint cannot be found or does not fit the model."""


class NonFiniteError(Stop):
    """Training diverged (a NaN or infinite loss or gradient), or a model's outputs are not
    finite; nothing non-finite was saved."""

    exit_code = 3


class Preempted(Stop):
    """The run was asked to stop (SIGTERM) and saved a checkpoint to resume from; the exit code
    is the shell's for SIGTERM, so schedulers see the run as interrupted, not finished."""

    exit_code = 143
