"""The converters' user error: a checkpoint that cannot be read or does not fit the architecture."""

from __future__ import annotations

from jaxtl.core.errors import UserError


class ConversionError(UserError):
    """The weights file is unreadable, unsafe to read, or its names/shapes do not fit the model."""
