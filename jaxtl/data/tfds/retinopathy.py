"""TFDS `diabetic_retinopathy_detection` (every config): 5 grades per fundus photograph.

TFDS holds the Kaggle EyePACS data as `train` (trainLabels.csv, 35,126 images), `validation`
(the Kaggle test set's Public leaderboard part, 10,906) and `test` (its Private part, 42,670),
plus `sample` (10 unlabelled images, never read). Every example has `name` (`<patient>_<eye>`),
`image` (JPEG: as downloaded for `original`, resized for `1M`/`250K`, Graham-processed for
`btgraham-300`) and `label` (0..4). The patient is the number before the eye, so both eyes of a
patient stay in one split.

Splits (`tfds.split`): `tfds` takes TFDS's train / validation / test as they are (TFDS divides
the Kaggle test set by the Usage of each image, so a patient could have an eye on each side:
such patients are counted in the log); `patient` divides TFDS's train split by patient with data.val_fraction,
data.test_fraction and data.split_seed, as jaxtl's eyepacs dataset divides trainLabels.csv.
"""

from __future__ import annotations

import pathlib
import re
from typing import Any

from absl import logging

from jaxtl.core import tasks
from jaxtl.data.records import DataError, DatasetSplits, Record
from jaxtl.data.splits import split_by_patient
from jaxtl.data.tfds import source

NAME = "diabetic_retinopathy_detection"
CONFIGS = ("original", "1M", "250K", "btgraham-300")
CLASS_NAMES = ("0 none", "1 mild", "2 moderate", "3 severe", "4 proliferative")
SPLIT_MODES = ("tfds", "patient")
TFDS_SPLITS = {"train": "train", "val": "validation", "test": "test"}
_NAME = re.compile(r"^(\d+)_(left|right)$")


def read_split(builder: Any, split: str, cache_dir: pathlib.Path) -> list[Record]:
    columns = source.read_columns(builder, split, ("name", "label"), cache_dir)
    records = []
    for index, (name, label) in enumerate(zip(columns["name"], columns["label"])):
        where = f"{builder.data_dir}, split {split}, example {index} ({name!r})"
        match = _NAME.match(name)
        if match is None:
            raise DataError(f"{where}: the name is not <patient>_left or <patient>_right")
        if label not in range(len(CLASS_NAMES)):
            raise DataError(f"{where}: label {label} is not a grade 0..4 (-1 marks unlabelled "
                            f"images, which only the sample split holds)")
        records.append(Record(image_id=name, path=source.record_path(builder, split, index),
                              label=label, patient=match.group(1)))
    return records


def load(builder: Any, *, split_mode: str, val_fraction: float, test_fraction: float,
         split_seed: int, cache_dir: pathlib.Path, demo: bool) -> DatasetSplits:
    task = tasks.multiclass(CLASS_NAMES)
    if split_mode == "patient":
        train, val, test = split_by_patient(read_split(builder, "train", cache_dir),
                                            val_fraction=val_fraction,
                                            test_fraction=test_fraction, seed=split_seed)
        return DatasetSplits(name=NAME, task=task, train=train, val=val, test=test, demo=demo)
    parts = {ours: read_split(builder, theirs, cache_dir) for ours, theirs in TFDS_SPLITS.items()}
    patients = {ours: {r.patient for r in records} for ours, records in parts.items()}
    shared = patients["val"] & patients["test"]
    if shared:
        logging.warning("%s: %d patients have images in both TFDS's validation and test splits "
                        "(the Usage of the Kaggle test set is per image); use "
                        "tfds.split=patient for patient-disjoint splits", NAME, len(shared))
    return DatasetSplits(name=NAME, task=task, train=parts["train"], val=parts["val"],
                         test=parts["test"], demo=demo)
