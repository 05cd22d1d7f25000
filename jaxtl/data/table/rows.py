"""From image rows (a table's or a folder tree's) to a task, labels and splits.

Both forms of your own data (`csv.py`: a table; `folders.py`: class folders) produce `Row`s:
where the row is (for messages), the image's id and path, its class or label cells, and
optionally its group (patient) and fixed split. This module turns them into records:

- one class per image (`classes`): class names come from the config in order, or are the
  distinct values found (integers in numeric order, else sorted as text); a value outside the
  configured classes is an error naming the row.
- several labels per image (`labels`): each cell is 1 (positive), 0 (negative), -1 (uncertain)
  or empty, written as integers or as 1.0 / 0.0 / -1.0; uncertain and empty cells get the chest
  X-ray policies (`jaxtl.data.chest.labels.encode`: ignore / zeros / ones / multiclass, empty
  negative or masked).
- splits: a fixed split per row (train, val, test; valid and validation mean val), with val
  drawn by group from train when no row says val; or, without it, groups assigned with
  `jaxtl.data.splits.assign_patients` (data.split_seed, data.val_fraction,
  data.test_fraction). A group is never in two splits: a group with rows in two fixed splits is
  an error naming both rows. Without groups every image is its own group (a warning says so).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
from absl import logging

from jaxtl.core import tasks
from jaxtl.data import splits as splitting
from jaxtl.data.chest import labels as chest_labels
from jaxtl.data.records import SPLITS, DataError, DatasetSplits, Record

SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val",
               "test": "test"}
LABEL_VALUES = {"1": 1.0, "1.0": 1.0, "0": 0.0, "0.0": 0.0, "-1": -1.0, "-1.0": -1.0,
                "": math.nan}


@dataclasses.dataclass(frozen=True)
class Row:
    where: str  # e.g. "labels.csv, line 7": names the row in messages
    image_id: str  # the image as the table or folder names it
    path: str  # absolute path of the image file
    value: str | tuple[str, ...]  # the class cell, or one cell per label
    group: str = ""  # patient or other group; "" when the data have none
    split: str = ""  # fixed split as written; "" when the data have none


def parse_names(value: str) -> tuple[str, ...]:
    """'a, b,c' -> ('a', 'b', 'c'); '' -> ()."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


def class_names(rows: Sequence[Row], configured: Sequence[str], what: str) -> tuple[str, ...]:
    """The configured classes (each row's value must be one), else the values found."""
    if configured:
        known = set(configured)
        for row in rows:
            if row.value not in known:
                raise DataError(f"{row.where}: class {row.value!r} is not one of the configured "
                                f"classes ({', '.join(configured)}); add it to {what} or fix "
                                f"the row")
        return tuple(configured)
    found = {row.value for row in rows}
    if "" in found:
        row = next(r for r in rows if r.value == "")
        raise DataError(f"{row.where}: the class is empty; every image needs a class")
    if all(_is_integer(value) for value in found):
        return tuple(sorted(found, key=int))
    return tuple(sorted(found))


def _is_integer(text: str) -> bool:
    return text.lstrip("-").isdigit()


def single_label(rows: Sequence[Row], configured: Sequence[str],
                 what: str) -> tuple[tasks.Task, list[int]]:
    names = class_names(rows, configured, what)
    if len(names) < 2:
        raise DataError(f"{rows[0].where}: every image has the class {names[0]!r}; a "
                        f"classifier needs at least two classes")
    index = {name: i for i, name in enumerate(names)}
    return tasks.multiclass(names), [index[row.value] for row in rows]


def multi_label(rows: Sequence[Row], names: Sequence[str], *, uncertain: str,
                per_label: Mapping[str, str], eval_uncertain: str, empty: str,
                training_rows: Sequence[bool],
                ) -> tuple[tasks.Task, list[tuple[int, ...]], dict[str, str]]:
    """The multilabel task of `names`, each row's encoded labels (jaxtl.core.tasks values) and the
    label policies used: rows in `training_rows` take the training policies (`uncertain`,
    `per_label`), the others (validation, test) `eval_uncertain`, so that runs trained with
    different policies are scored against the same labels (as for chest X-rays)."""
    raw = np.empty((len(rows), len(names)))
    for r, row in enumerate(rows):
        for c, (name, cell) in enumerate(zip(names, row.value)):
            value = LABEL_VALUES.get(cell.strip())
            if value is None:
                raise DataError(f"{row.where}: column {name!r} holds {cell!r}; label cells are "
                                f"1, 0, -1 (uncertain) or empty")
            raw[r, c] = value
    policies = [per_label.get(name, uncertain) for name in names]
    encoded = chest_labels.encode_splits({name: raw[:, c] for c, name in enumerate(names)},
                                         policies, eval_uncertain, empty,
                                         np.asarray(training_rows, bool))
    task = tasks.multilabel(names, [policy == "multiclass" for policy in policies])
    overrides = ", ".join(f"{name}={policy}" for name, policy in zip(names, policies)
                          if policy != uncertain)
    used = {"train_uncertain": uncertain + (f" ({overrides})" if overrides else ""),
            "eval_uncertain": eval_uncertain, "empty": empty}
    return task, [tuple(row) for row in encoded.tolist()], used


def assign_splits(rows: Sequence[Row], *, val_fraction: float, test_fraction: float,
                  seed: int, source: str, group_key: str) -> list[str]:
    """The split of every row (see the module doc)."""
    groups = [row.group or row.image_id for row in rows]
    if not any(row.group for row in rows):
        logging.warning("%s: no group (patient) per image, so images are split one by one and "
                        "images of one patient can fall on both sides; name the group with %s",
                        source, group_key)
    if not any(row.split for row in rows):
        split_of = splitting.assign_patients(
            groups, {"test": test_fraction, "val": val_fraction, "train": 1.0}, seed)
        return [split_of[group] for group in groups]
    fixed: list[str] = []
    first_row: dict[tuple[str, str], Row] = {}
    for row, group in zip(rows, groups):
        split = SPLIT_NAMES.get(row.split.strip().lower())
        if split is None:
            raise DataError(f"{row.where}: split {row.split!r} is not one of train, val, test "
                            f"(or valid, validation)")
        fixed.append(split)
        first_row.setdefault((group, split), row)
    by_group: dict[str, list[str]] = {}
    for (group, split) in first_row:
        by_group.setdefault(group, []).append(split)
    crossing = next((g for g, splits_of_group in by_group.items() if len(splits_of_group) > 1),
                    None)
    if crossing is not None:
        a, b = by_group[crossing][:2]
        raise DataError(f"{first_row[(crossing, a)].where} puts group {crossing!r} in {a}, "
                        f"{first_row[(crossing, b)].where} in {b}: a group's images must share "
                        f"one split; fix the split column")
    if "val" not in fixed:
        train_groups = [g for g, split in zip(groups, fixed) if split == "train"]
        val_of = splitting.assign_patients(train_groups, {"val": val_fraction, "train": 1.0},
                                           seed)
        fixed = [val_of[g] if split == "train" else split for g, split in zip(groups, fixed)]
    return fixed


def dataset_splits(name: str, rows: Sequence[Row], task: tasks.Task, labels: Sequence,
                   split_of_rows: Sequence[str], demo: bool,
                   label_policies: Mapping[str, str] | None = None) -> DatasetSplits:
    records: dict[str, list[Record]] = {split: [] for split in SPLITS}
    for row, label, split in zip(rows, labels, split_of_rows):
        records[split].append(Record(image_id=row.image_id, path=row.path, label=label,
                                     patient=row.group or row.image_id))
    return DatasetSplits(name=name, task=task, train=records["train"], val=records["val"],
                         test=records["test"], demo=demo,
                         label_policies=dict(label_policies or {}))
