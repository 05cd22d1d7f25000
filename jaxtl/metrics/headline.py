"""A split's metrics as a person reads them: a value with its confidence interval, one line of
headline metrics, and tables as plain text (the console) or Markdown (files beside results).

The numbers come from a results.json split entry as the evaluators write it: `<metric>` and
`<metric>_ci: [low, high]` (or null), per-class and per-label metrics as dicts
(`recall: {class: value}`, `recall_ci: {class: [low, high]}`), and `ci_level`.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from jaxtl.metrics.bootstrap import CI_LEVEL

CI_SUFFIX = "_ci"
DIGITS = 3


def is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def number(value: Any, digits: int = DIGITS) -> str:
    """A float with `digits` decimals, a count as it is."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(value)
    return f"{value:.{digits}f}" if is_number(value) else ("" if value is None else str(value))


def value_and_interval(metrics: Mapping[str, Any], name: str
                       ) -> tuple[float | None, tuple[float, float] | None]:
    """(value, interval) of `name` in a split's metrics; `family.label` names a per-class or
    per-label entry (`auroc.Edema`). None where the split holds no such number or interval."""
    family, _, label = name.partition(".")
    value, ci = metrics.get(family), metrics.get(family + CI_SUFFIX)
    if label:
        value = value.get(label) if isinstance(value, Mapping) else None
        ci = ci.get(label) if isinstance(ci, Mapping) else None
    if not is_number(value):
        return None, None
    if (isinstance(ci, (list, tuple)) and len(ci) == 2 and all(is_number(c) for c in ci)):
        return value, (float(ci[0]), float(ci[1]))
    return value, None


def with_interval(value: float | None, interval: tuple[float, float] | None,
                  digits: int = DIGITS) -> str:
    """'0.812 [0.774, 0.850]'; the value alone without an interval; '' without a value."""
    if value is None:
        return ""
    text = number(value, digits)
    return text + (f" [{number(interval[0], digits)}, {number(interval[1], digits)}]"
                   if interval is not None else "")


def metric_text(metrics: Mapping[str, Any] | None, name: str, digits: int = DIGITS) -> str:
    return with_interval(*value_and_interval(metrics or {}, name), digits=digits)


def level_text(metrics: Mapping[str, Any] | None) -> str:
    """'95% CI' from the split's `ci_level` (CI_LEVEL where it records none)."""
    level = (metrics or {}).get("ci_level")
    return f"{100 * (level if is_number(level) else CI_LEVEL):g}% CI"


def line(metrics: Mapping[str, Any], names: Sequence[str], digits: int = DIGITS) -> str:
    """'kappa 0.812 [0.774, 0.850], accuracy 0.700 [0.650, 0.750] (95% CI)': the named
    metrics the split holds, each with its interval where it has one."""
    parts = [f"{name} {metric_text(metrics, name, digits)}" for name in names
             if value_and_interval(metrics, name)[0] is not None]
    has_ci = any(value_and_interval(metrics, name)[1] is not None for name in names)
    return ", ".join(parts) + (f" ({level_text(metrics)})" if parts and has_ci else "")


def scalar_names(metrics: Mapping[str, Any]) -> list[str]:
    """The split's scalar metrics in the order it holds them (not intervals, counts of
    resamples or the level)."""
    return [name for name, value in metrics.items()
            if is_number(value) and not name.endswith(CI_SUFFIX)
            and not name.startswith("bootstrap") and name != "ci_level"]


def per_class_names(metrics: Mapping[str, Any]) -> dict[str, list[str]]:
    """{metric: [class or label names]} of the split's per-class / per-label metrics."""
    return {name: [label for label, v in value.items() if is_number(v)]
            for name, value in metrics.items()
            if isinstance(value, Mapping) and not name.endswith(CI_SUFFIX)
            and not name.startswith("bootstrap") and any(is_number(v) for v in value.values())}


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def text_table(header: Sequence[Any], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell, the header underlined: for the console."""
    cells = [[_cell(c) for c in header]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells if i < len(row)) for i in range(len(header))]

    def render(row: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()

    return "\n".join([render(cells[0]), render(["-" * w for w in widths])]
                     + [render(row) for row in cells[1:]])


def markdown_table(header: Sequence[Any], rows: Sequence[Sequence[Any]]) -> str:
    def render(cells: Sequence[Any]) -> str:
        return "| " + " | ".join(_cell(c).replace("|", "\\|").replace("\n", " ")
                                 for c in cells) + " |"

    lines = [render(header), "| " + " | ".join("---" for _ in header) + " |"]
    return "\n".join(lines + [render(row) for row in rows])


def splits_table(results: Mapping[str, Any], splits: Sequence[str] = ("val", "test"),
                 per_class: bool = True) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a run's results: one row per metric (per-class and per-label
    entries as `metric.name` with `per_class`), one column per split that was scored, each
    cell the value with its interval."""
    scored = [split for split in splits if isinstance(results.get(split), Mapping)]
    names: dict[str, None] = {}
    for split in scored:
        names |= dict.fromkeys(scalar_names(results[split]))
    if per_class:
        for split in scored:
            for family, labels in per_class_names(results[split]).items():
                names |= dict.fromkeys(f"{family}.{label}" for label in labels)
    header = ["metric", *(f"{split} [{level_text(results[split])}]" for split in scored)]
    return header, [[name, *(metric_text(results[split], name) for split in scored)]
                    for name in names]
