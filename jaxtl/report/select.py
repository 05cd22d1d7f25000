"""Which numbers a report shows: grouping the rows of a sweep table and choosing runs.

Rows are those of results.jsonl (jaxtl.sweep.table). A figure point stands for one cell
(pretraining source x training size, within a panel). Runs that differ only in their seeds
(`jaxtl.sweep.SEED_KEYS`) are one configuration: the point is the mean of its seeds' metric,
with their standard deviation and every seed's value. When several configurations share a
cell (other hyperparameters vary), the cell shows the configuration with the best mean
validation metric, never the best test metric, and the report says so.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from jaxtl.sweep.grid import SEED_KEYS
from jaxtl.sweep.table import METRIC_PREFIXES

Row = Mapping[str, Any]
ALL = -1  # data.train_per_class that keeps every training image
SIZE_KEY = "data.train_per_class"
SOURCE_KEY = "pretrain"
NO_PRETRAINING = "none"  # the pretraining source of runs from random initialisation
HYPERPARAMETER_PREFIXES = ("dataset", "data.", "model.", "optim.", "train.", "eval.", "finetune.",
                           "lora.")
# Settings that do not change what a run computes, or that the pretraining source stands for.
IGNORED_KEYS = ("data.cache_dir", "data.num_workers", "data.prefetch_batches",
                "train.log_every_steps", "model.init")


@dataclasses.dataclass(frozen=True)
class Study:
    """The finished grid runs of one dataset (and task), compared on one metric."""

    dataset: str
    metric: str  # eval.best_metric of the runs, e.g. kappa or mean_auroc
    split: str  # 'test' when the runs have a test split, else 'val'
    rows: tuple[Row, ...]

    @property
    def title(self) -> str:
        return self.dataset


def done(rows: Iterable[Row]) -> list[Row]:
    return [row for row in rows if row.get("status") == "done"]


def value(row: Row, split: str, metric: str) -> float | None:
    number = row.get(f"{split}.{metric}")
    return float(number) if isinstance(number, (int, float)) and not isinstance(
        number, bool) and math.isfinite(number) else None


def interval(row: Row, split: str, metric: str) -> tuple[float, float] | None:
    low, high = row.get(f"{split}.{metric}.ci_low"), row.get(f"{split}.{metric}.ci_high")
    if isinstance(low, (int, float)) and isinstance(high, (int, float)):
        return float(low), float(high)
    return None


def num_classes(row: Row) -> int | None:
    matrix = row.get("test.confusion_matrix") or row.get("val.confusion_matrix")
    return len(matrix) if isinstance(matrix, list) and matrix else None


def training_size(row: Row) -> float | None:
    """Training images per class: the cap, or for 'all' the mean per class actually used."""
    cap = row.get(SIZE_KEY)
    if isinstance(cap, (int, float)) and cap > 0:
        return float(cap)
    train = row.get("split_sizes.train")
    classes = num_classes(row)
    if cap == ALL and isinstance(train, (int, float)) and classes:
        return train / classes
    return None


def studies(rows: Iterable[Row]) -> list[Study]:
    """Finished grid runs grouped by dataset (and data.task where the config has one)."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in done(rows):
        if row.get("role") not in (None, "grid"):
            continue
        task = row.get("data.task")
        dataset = str(row.get("dataset")) + (f" / {task}" if task else "")
        groups.setdefault((dataset, str(row.get("eval.best_metric"))), []).append(row)
    result = []
    for (dataset, metric), members in sorted(groups.items()):
        split = "test" if all(value(r, "test", metric) is not None for r in members) else "val"
        result.append(Study(dataset=dataset, metric=metric, split=split, rows=tuple(members)))
    return result


def best_by_validation(rows: Sequence[Row], metric: str) -> Row:
    """The run with the highest validation metric (the first on a tie)."""
    return max(rows, key=lambda r: (value(r, "val", metric) is not None,
                                    value(r, "val", metric) or 0.0, -rows.index(r)))


def hyperparameter_keys(rows: Sequence[Row]) -> list[str]:
    """Config keys that differ between the rows (seeds included)."""
    keys = sorted({key for row in rows for key in row if key.startswith(HYPERPARAMETER_PREFIXES)
                   and not key.startswith(METRIC_PREFIXES) and key not in IGNORED_KEYS})
    return varying_keys(rows, keys)


def configurations(rows: Sequence[Row]) -> list[list[Row]]:
    """The rows grouped into configurations: runs that differ in their seeds only, each group
    sorted by seed."""
    keys = [key for key in hyperparameter_keys(rows) if key not in SEED_KEYS]
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(repr([row.get(key) for key in keys]), []).append(row)
    return [sorted(group, key=lambda r: [str(r.get(key)) for key in SEED_KEYS])
            for group in groups.values()]


def mean_value(rows: Sequence[Row], split: str, metric: str) -> float | None:
    values = [value(row, split, metric) for row in rows]
    return float(np.mean(values)) if values and None not in values else None


def best_configuration(rows: Sequence[Row], metric: str) -> list[Row]:
    """The configuration (its seeds' runs) with the highest mean validation metric."""
    groups = configurations(rows)
    return max(groups, key=lambda g: (mean_value(g, "val", metric) is not None,
                                      mean_value(g, "val", metric) or 0.0, -groups.index(g)))


@dataclasses.dataclass(frozen=True)
class Point:
    x: float
    y: float  # the mean over seeds
    ci: tuple[float, float] | None  # the run's interval, with a single seed
    run: str  # the first seed's run
    all_images: bool  # the 'all' training size
    runs: tuple[str, ...] = ()  # every seed's run
    values: tuple[float, ...] = ()  # every seed's value
    val: float | None = None  # the mean validation metric over seeds

    @property
    def spread(self) -> float | None:
        """Standard deviation over seeds (n - 1), None with one seed."""
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else None


def series(rows: Sequence[Row], study: Study,
           line_of: Callable[[Row], str] = lambda r: str(r.get(SOURCE_KEY))
           ) -> dict[str, list[Point]]:
    """{line label: points sorted by x}; one point per (line, training size) cell."""
    cells: dict[tuple[str, float], list[Row]] = {}
    for row in rows:
        x = training_size(row)
        if x is not None:
            cells.setdefault((line_of(row), x), []).append(row)
    lines: dict[str, list[Point]] = {}
    for (line, x), members in sorted(cells.items()):
        chosen = best_configuration(members, study.metric)
        y = mean_value(chosen, study.split, study.metric)
        if y is None:
            continue
        first = chosen[0]
        lines.setdefault(line, []).append(Point(
            x=x, y=y, ci=interval(first, study.split, study.metric) if len(chosen) == 1
            else None, run=str(first["run"]), all_images=first.get(SIZE_KEY) == ALL,
            runs=tuple(str(r["run"]) for r in chosen),
            values=tuple(value(r, study.split, study.metric) for r in chosen),
            val=mean_value(chosen, "val", study.metric)))
    return lines


def panels(study: Study, key: str) -> dict[str, list[Row]]:
    """The study's rows split by the value of a config key (e.g. model.arch)."""
    out: dict[str, list[Row]] = {}
    for row in study.rows:
        out.setdefault(str(row.get(key)), []).append(row)
    return dict(sorted(out.items()))


def chosen_runs(study: Study, names: Sequence[str] = ()) -> list[Row]:
    """Runs whose curves the report draws: the named ones, else per pretraining source the
    best-validated run at the largest training size."""
    if names:
        return [row for row in study.rows if row["run"] in names]
    chosen = []
    for points in series(list(study.rows), study).values():
        largest = max(points, key=lambda p: p.x)
        chosen.append(next(row for row in study.rows if row["run"] == largest.run))
    return chosen


def varying_keys(rows: Sequence[Row], candidates: Iterable[str]) -> list[str]:
    """Config keys whose value differs between rows."""
    out = []
    for key in candidates:
        values = {repr(row.get(key)) for row in rows}
        if len(values) > 1:
            out.append(key)
    return out
