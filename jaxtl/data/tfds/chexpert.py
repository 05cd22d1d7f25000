"""TFDS `chexpert`: CheXpert-v1.0-small's 14 observations, read without TensorFlow.

TFDS holds `train` (train.csv) and `validation` (valid.csv). Every example has `name` (the CSV's
Path, e.g. `CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg`), `image` (the JPEG
as downloaded), `image_view` (frontal or lateral) and `label`: one class per observation, in the
CSV's column order (`jaxtl.data.chest.labels.CHEXPERT_LABELS`), named uncertain, positive,
negative or unmentioned: the raw -1, 1, 0 and empty cells. From there everything is jaxtl's
chexpert dataset (`jaxtl/data/chest/`): tasks, uncertainty and empty-cell policies
(`chest.uncertain`, `chest.uncertain_per_label`, `chest.empty`), patient-wise or official splits
(`chest.split`: official takes `validation` as the test split). TFDS keeps neither sex, age nor
AP/PA, so `chest.view` is frontal, lateral or all.
"""

from __future__ import annotations

import math
import pathlib
from typing import Any

import ml_collections
import numpy as np

from jaxtl.data.chest import reader as chest_reader
from jaxtl.data.chest.labels import CHEXPERT_LABELS
from jaxtl.data.chest.table import ChestTable
from jaxtl.data.records import DataError, DatasetSplits
from jaxtl.data.tfds import source

NAME = "chexpert"
CONFIGS: tuple[str, ...] = ()
VIEWS = ("frontal", "lateral", "all")
TFDS_SPLITS = {"train": "train", "validation": "valid"}  # TFDS split -> CheXpert file
RAW_VALUES = {"uncertain": -1.0, "positive": 1.0, "negative": 0.0, "unmentioned": math.nan}


def read_table(builder: Any, cache_dir: pathlib.Path) -> ChestTable:
    class_names = builder.info.features["label"].feature.names
    unknown = [name for name in class_names if name not in RAW_VALUES]
    if unknown:
        raise DataError(f"{builder.data_dir}: label classes {class_names}; expected "
                        f"{', '.join(RAW_VALUES)} as TFDS's chexpert defines them")
    raw = np.asarray([RAW_VALUES[name] for name in class_names])
    tables = []
    for split, file in TFDS_SPLITS.items():
        columns = source.read_columns(builder, split, ("name", "label", "image_view"),
                                      cache_dir)
        view_names = builder.info.features["image_view"].names
        image_ids, patients, studies = [], [], []
        for index, (name, labels) in enumerate(zip(columns["name"], columns["label"])):
            where = f"{builder.data_dir}, split {split}, example {index} ({name!r})"
            if len(labels) != len(CHEXPERT_LABELS):
                raise DataError(f"{where}: {len(labels)} labels; CheXpert has "
                                f"{len(CHEXPERT_LABELS)}")
            parts = name.split("/")
            patient = next((p for p in parts if p.startswith("patient")), None)
            study = next((p for p in parts if p.startswith("study")), None)
            if patient is None or study is None:
                raise DataError(f"{where}: the name does not hold patientNNNNN/studyN")
            image_ids.append("/".join(parts[parts.index(patient) - 1:]))
            patients.append(patient)
            studies.append(f"{patient}/{study}")
        count = len(image_ids)
        values = raw[np.asarray(columns["label"], np.int64).reshape(count, -1)]
        tables.append(ChestTable(
            image_ids=image_ids,
            paths=[source.record_path(builder, split, i) for i in range(count)],
            patients=patients, studies=studies,
            frontal=np.asarray([view_names[v] == "frontal" for v in columns["image_view"]],
                               bool),
            view=[""] * count, sex=[""] * count, age=np.full(count, math.nan),
            labels={label: values[:, i] for i, label in enumerate(CHEXPERT_LABELS)},
            source=[file] * count))
    return ChestTable.concat(tables)


def load(builder: Any, config: ml_collections.ConfigDict, cache_dir: pathlib.Path,
         demo: bool) -> DatasetSplits:
    table = read_table(builder, cache_dir)
    official_test = np.asarray([s == "valid" for s in table.source])
    return chest_reader.table_splits(NAME, table, official_test, config, demo)
