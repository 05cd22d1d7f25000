"""CheXpert and ChestX-ray14 from a config: view filter, splits, task and label policies.

Order of operations: read the CSVs -> keep the configured views -> split by patient (or take
the official split) -> encode each task label: training rows with the label's uncertainty
policy (`chest.uncertain`, `chest.uncertain_per_label`), validation and test rows with the
evaluation policy (`chest.eval_uncertain`), both with the empty-cell policy -> records. The per-category training cap (`data.train_per_class`) is applied afterwards by
`jaxtl.data.loading` with the rule in `jaxtl.data.sampling`.

Splits (`chest.split`):
- `patient`: all images (CheXpert: train.csv and valid.csv together) are split by patient with
  `data.val_fraction` and `data.test_fraction` (default 70/10/20), seeded by `data.split_seed`.
- `official`: CheXpert's test split is valid.csv (radiologist labels); ChestX-ray14's is
  test_list.txt. The rest is split by patient into train and val with `data.val_fraction`.
In both, a patient is never in two splits.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

import ml_collections
import numpy as np

from jaxtl.data import splits
from jaxtl.data.chest import chexpert, cxr14
from jaxtl.data.chest import labels as chest_labels
from jaxtl.data.chest.table import ChestTable
from jaxtl.data.records import DataError, DatasetSplits, Record

VIEWS = ("frontal", "lateral", "ap", "pa", "all")
SPLIT_MODES = ("patient", "official")


def view_mask(table: ChestTable, view: str) -> np.ndarray:
    if view == "all":
        return np.ones(len(table), bool)
    if view == "frontal":
        return table.frontal.copy()
    if view == "lateral":
        return ~table.frontal
    return np.asarray([v.upper() == view.upper() for v in table.view])


def label_values(dataset: str, table: ChestTable, name: str) -> np.ndarray:
    """Raw values of a task label; CXR14 labels may be named in CheXpert terms (mapped)."""
    if name in table.labels:
        return table.labels[name]
    if dataset == "cxr14" and name in chest_labels.CXR14_AS_CHEXPERT:
        return chest_labels.merged([table.labels[source]
                                    for source in chest_labels.CXR14_AS_CHEXPERT[name]])
    raise DataError(f"{dataset} has no label {name!r}")


def split_table(table: ChestTable, mode: str, config: ml_collections.ConfigDict,
                official_test: np.ndarray) -> dict[str, np.ndarray]:
    """Split name -> boolean row mask; patients never cross splits."""
    data = config.data
    if mode == "official":
        rest = ~official_test
        test_patients = {p for p, t in zip(table.patients, official_test) if t}
        shared = {p for p, r in zip(table.patients, rest) if r} & test_patients
        if shared:
            raise DataError(f"{len(shared)} patients are on both sides of the official split "
                            f"(e.g. {sorted(shared)[0]}); use --config.chest.split=patient")
        assignment = splits.assign_patients(
            [p for p, r in zip(table.patients, rest) if r],
            {"val": data.val_fraction, "train": 1.0}, data.split_seed)
        which = np.asarray([assignment.get(p, "test") for p in table.patients])
        which[official_test] = "test"
    else:
        assignment = splits.assign_patients(
            table.patients, {"test": data.test_fraction, "val": data.val_fraction,
                             "train": 1.0}, data.split_seed)
        which = np.asarray([assignment[p] for p in table.patients])
    return {name: which == name for name in ("train", "val", "test")}


def read_table(dataset: str, root: pathlib.Path, config: ml_collections.ConfigDict,
               ) -> tuple[ChestTable, np.ndarray]:
    """The table of all images and the official test mask."""
    if dataset == "chexpert":
        train, valid = chexpert.read(root)
        table = ChestTable.concat([train, valid])
    else:
        table = cxr14.read(root, official_split=config.chest.split == "official")
    return table, np.asarray([source in ("valid", "test") for source in table.source])


def load(dataset: str, root: pathlib.Path, config: ml_collections.ConfigDict,
         demo: bool) -> DatasetSplits:
    root = root.expanduser().resolve()
    table, official_test = read_table(dataset, root, config)
    return table_splits(dataset, table, official_test, config, demo)


def table_splits(dataset: str, table: ChestTable, official_test: np.ndarray,
                 config: ml_collections.ConfigDict, demo: bool) -> DatasetSplits:
    """A read table -> the configured views, task labels (encoded with their policies) and
    splits, as records whose paths are the table's (TFDS's CheXpert shares this too)."""
    keep = view_mask(table, config.chest.view)
    if not keep.any():
        raise DataError(f"no {dataset} image has the view {config.chest.view!r}; "
                        f"choose chest.view from {', '.join(VIEWS)}")
    table, official_test = table.take(keep), official_test[keep]
    task, policies = chest_labels.build_task(
        dataset, config.data.task, config.chest.uncertain,
        chest_labels.parse_per_label(config.chest.uncertain_per_label))
    masks = split_table(table, config.chest.split, config, official_test)
    encoded = chest_labels.encode_splits(
        {name: label_values(dataset, table, name) for name in task.names}, policies,
        config.chest.eval_uncertain, config.chest.empty, masks["train"])
    labels = [tuple(row) for row in encoded.tolist()]
    records = {
        name: [Record(image_id=table.image_ids[i], path=table.paths[i], label=labels[i],
                      patient=table.patients[i])
               for i in np.flatnonzero(mask).tolist()]
        for name, mask in masks.items()}
    per_label = ", ".join(f"{name}={policy}" for name, policy in zip(task.names, policies)
                          if policy != config.chest.uncertain)
    policies_used = {"train_uncertain": config.chest.uncertain + (f" ({per_label})" if per_label
                                                                  else ""),
                     "eval_uncertain": config.chest.eval_uncertain, "empty": config.chest.empty}
    return DatasetSplits(name=dataset, task=task, train=records["train"], val=records["val"],
                         test=records["test"], demo=demo, label_policies=policies_used)


def resolve_files(dataset: str, root: pathlib.Path, data: DatasetSplits) -> DatasetSplits:
    """Finds (CXR14: in either folder layout) and checks the image files of every record.

    Only file names are listed and checked; no image is opened. Missing files are one error
    with their count, never silently dropped.
    """
    root = root.expanduser().resolve()
    everything = [r for name in ("train", "val", "test") for r in data.split(name)]
    if dataset == "cxr14":
        found: dict[str, str] = {}
        for folder in cxr14.image_folders(root):
            with os.scandir(folder) as entries:
                found.update((e.name, e.path) for e in entries if e.name not in found)
        path_of = lambda r: found.get(r.image_id)  # noqa: E731
        where = f"{root}/images/ or {root}/images_NNN/images/"
    else:
        path_of = lambda r: r.path if os.path.isfile(r.path) else None  # noqa: E731
        where = str(root)
    located = {r.image_id: path_of(r) for r in everything}
    missing = [image for image, path in located.items() if path is None]
    if missing:
        raise DataError(f"{len(missing)} of the {len(located)} {dataset} images this run uses "
                        f"are missing from {where} (first: {', '.join(missing[:3])}); unpack "
                        f"the complete download there")
    fix = lambda records: [dataclasses.replace(r, path=located[r.image_id])  # noqa: E731
                           for r in records]
    return dataclasses.replace(data, train=fix(data.train), val=fix(data.val),
                               test=fix(data.test))
