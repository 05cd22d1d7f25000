"""Building blocks of config validation: each rule returns what is wrong with a value, or None.

Used by jaxtl.config.validation for the common keys and by the dataset specs
(jaxtl.data.<dataset>/spec.py) for their own keys.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

Rule = Callable[[Any], str | None]  # returns what is wrong, or None when the value is fine

AUGMENTATIONS = ("crop", "flip", "rotate")
DTYPES = ("float32", "bfloat16")


def choice(*allowed: str) -> Rule:
    def check(value: Any) -> str | None:
        if value not in allowed:
            return f"is {value!r}; allowed values: {', '.join(allowed)}"
        return None

    return check


def number(low: float | None = None, high: float | None = None, *, integer: bool = False,
           allowed_extra: tuple[float, ...] = ()) -> Rule:
    def check(value: Any) -> str | None:
        kind = "an integer" if integer else "a number"
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return f"is {value!r}; expected {kind}"
        if value in allowed_extra:
            return None
        if integer and int(value) != value:
            return f"is {value!r}; expected {kind}"
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"{'-inf' if low is None else low} .. {'inf' if high is None else high}"
            extra = f" (or {', '.join(map(str, allowed_extra))})" if allowed_extra else ""
            return f"is {value!r}; expected {kind} in {bounds}{extra}"
        return None

    return check


def boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"is {value!r}; expected True or False"


def text(value: Any) -> str | None:
    return None if isinstance(value, str) else f"is {value!r}; expected a string"


def triple_of_positive(value: Any) -> str | None:
    if (not isinstance(value, (tuple, list)) or len(value) == 0
            or not all(isinstance(v, numbers.Real) and v > 0 for v in value)):
        return f"is {value!r}; expected a tuple of positive numbers, one per channel"
    return None


def number_tuple(*, minimum: float, allow_minimum: bool, ascending: bool,
                 expected: str) -> Rule:
    """A tuple (or list) of numbers above `minimum` (or equal to it with `allow_minimum`),
    in ascending order when `ascending`; `expected` describes it in the message."""
    def check(value: Any) -> str | None:
        if not isinstance(value, (tuple, list)) or not all(
                isinstance(v, numbers.Real) and not isinstance(v, bool)
                and (v >= minimum if allow_minimum else v > minimum) for v in value):
            return f"is {value!r}; expected {expected}"
        if ascending and list(value) != sorted(value):
            return f"is {value!r}; the epochs must be in ascending order"
        return None

    return check


ascending_epochs = number_tuple(
    minimum=0, allow_minimum=False, ascending=True,
    expected="a tuple of positive epoch numbers, e.g. (10, 20)")
epochs_from_zero = number_tuple(
    minimum=0, allow_minimum=True, ascending=True,
    expected="a tuple of epoch numbers >= 0, e.g. (2, 4, 6)")
positive_numbers = number_tuple(
    minimum=0, allow_minimum=False, ascending=False,
    expected="a tuple of positive numbers (or () for none)")


def augment_list(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"is {value!r}; expected 'none' or a comma list of {', '.join(AUGMENTATIONS)}"
    if value == "none":
        return None
    unknown = [a for a in parse_augment(value) if a not in AUGMENTATIONS]
    if unknown or not parse_augment(value):
        return (f"is {value!r}; expected 'none' or a comma list of "
                f"{', '.join(AUGMENTATIONS)} (e.g. 'crop,flip')")
    return None


def parse_augment(value: str) -> tuple[str, ...]:
    """'crop, flip' -> ('crop', 'flip'); 'none' -> ()."""
    if value.strip() == "none":
        return ()
    return tuple(part.strip() for part in value.split(",") if part.strip())


def positive_integers(value: Any) -> str | None:
    """A non-empty tuple (or list) of positive integers, e.g. layer widths."""
    if (not isinstance(value, (tuple, list)) or not value
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0
                       for v in value)):
        return f"is {value!r}; expected a non-empty tuple of positive integers, e.g. (64, 32)"
    return None
