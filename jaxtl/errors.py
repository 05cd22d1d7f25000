"""Errors caused by the user's input. The entry points print them as one message, no traceback."""

from __future__ import annotations


class UserError(ValueError):
    """Something the user can fix: the message says what is wrong and what to do."""


class ConfigError(UserError):
    """The config names an unknown key or holds a value that is not allowed."""


class DataError(UserError):
    """A dataset on disk is missing or not in the expected layout."""


class WorkdirConflict(UserError):
    """The workdir holds a run with a different config."""


class TransferError(UserError):
    """An init checkpoint cannot be found or does not fit the model."""
