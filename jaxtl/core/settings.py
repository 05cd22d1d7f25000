"""Config settings: each key declared once (`Setting`: default, rule, help), and the building
blocks of its rule; each rule returns what is wrong with a value, or None.

jaxtl/config/base.py declares the common keys, the dataset specs (jaxtl/data/<dataset>/spec.py)
their own sections; the base config, validation and `python -m jaxtl.commands.settings` are
built from the declarations. A rule says what it allows (`allowed_values`) for the listing.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any

Rule = Callable[[Any], str | None]  # returns what is wrong, or None when the value is fine


@dataclasses.dataclass(frozen=True)
class Setting:
    """One config key: its default, the rule every value must pass and what it means."""

    default: Any
    rule: Rule
    help: str


Section = Mapping[str, Setting]  # key -> its setting, in the order the config lists them
TOP_LEVEL = ""  # the section name of keys outside any section (`dataset`)


def flat(sections: Mapping[str, Section]) -> dict[str, Setting]:
    """'section.key' (or 'key' for `TOP_LEVEL`) -> its setting."""
    return {(f"{section}.{key}" if section != TOP_LEVEL else key): setting
            for section, keys in sections.items() for key, setting in keys.items()}


def allowing(description: str) -> Callable[[Rule], Rule]:
    """The rule, saying what it allows in words (e.g. 'a band selection such as 10m20m'); a
    copy, so that one rule may be described differently in two places."""
    def describe(rule: Rule) -> Rule:
        @functools.wraps(rule)
        def described(value: Any) -> str | None:
            return rule(value)

        described.allowed = description  # type: ignore[attr-defined]
        return described

    return describe


def allowed_values(rule: Rule) -> str:
    """What `rule` allows, in words ('' for a rule that does not say)."""
    return getattr(rule, "allowed", "")


def unknown_setting(key: str, known: Iterable[str]) -> str:
    """The message for a config key nothing declares, with the closest known key."""
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.7)
    hint = (f"did you mean {close[0]}?" if close else
            "remove it (python -m jaxtl.commands.settings --config FILE lists the settings)")
    return f"config.{key} is not a known setting; {hint}"


AUGMENTATIONS = ("crop", "flip", "rotate")
DTYPES = ("float32", "bfloat16")


def choice(*allowed: Any) -> Rule:
    listed = ", ".join(map(str, allowed))

    def check(value: Any) -> str | None:
        if value not in allowed:
            return f"is {value!r}; allowed values: {listed}"
        return None

    return allowing(listed)(check)


def number(low: float | None = None, high: float | None = None, *, integer: bool = False,
           allowed_extra: tuple[float, ...] = ()) -> Rule:
    kind = "an integer" if integer else "a number"
    bounds = f"{'-inf' if low is None else low} .. {'inf' if high is None else high}"
    extra = f" (or {', '.join(map(str, allowed_extra))})" if allowed_extra else ""

    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return f"is {value!r}; expected {kind}"
        if value in allowed_extra:
            return None
        if integer and int(value) != value:
            return f"is {value!r}; expected {kind}"
        if (low is not None and value < low) or (high is not None and value > high):
            return f"is {value!r}; expected {kind} in {bounds}{extra}"
        return None

    return allowing(f"{kind} in {bounds}{extra}")(check)


@allowing("True or False")
def boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"is {value!r}; expected True or False"


@allowing("a string")
def text(value: Any) -> str | None:
    return None if isinstance(value, str) else f"is {value!r}; expected a string"


@allowing("a tuple of positive numbers, one per channel")
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

    return allowing(expected)(check)


ascending_epochs = number_tuple(
    minimum=0, allow_minimum=False, ascending=True,
    expected="a tuple of positive epoch numbers, e.g. (10, 20)")
epochs_from_zero = number_tuple(
    minimum=0, allow_minimum=True, ascending=True,
    expected="a tuple of epoch numbers >= 0, e.g. (2, 4, 6)")
positive_numbers = number_tuple(
    minimum=0, allow_minimum=False, ascending=False,
    expected="a tuple of positive numbers (or () for none)")


@allowing(f"'none' or a comma list of {', '.join(AUGMENTATIONS)}")
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


@allowing("a non-empty tuple of positive integers, e.g. (64, 32)")
def positive_integers(value: Any) -> str | None:
    """A non-empty tuple (or list) of positive integers, e.g. layer widths."""
    if (not isinstance(value, (tuple, list)) or not value
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0
                       for v in value)):
        return f"is {value!r}; expected a non-empty tuple of positive integers, e.g. (64, 32)"
    return None
