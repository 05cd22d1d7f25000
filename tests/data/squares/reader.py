"""The layout: `labels.csv` (`image,shape,patient`) and `images/<image>.png`."""

from __future__ import annotations

import csv
import pathlib

from jaxtl.core import tasks
from jaxtl.data.records import DataError, DatasetSplits, Record
from jaxtl.data.splits import split_by_patient

NAME = "squares"
SHAPES = ("square", "circle")
LABELS_FILE = "labels.csv"
IMAGE_DIR = "images"


def load(root: pathlib.Path, *, val_fraction: float, test_fraction: float, split_seed: int,
         demo: bool) -> DatasetSplits:
    path = root / LABELS_FILE
    if not path.is_file():
        raise DataError(f"{path} not found: a squares root holds {LABELS_FILE} and {IMAGE_DIR}/")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    records = [Record(image_id=row["image"], path=str(root / IMAGE_DIR / f"{row['image']}.png"),
                      label=SHAPES.index(row["shape"]), patient=row["patient"]) for row in rows]
    train, val, test = split_by_patient(records, val_fraction=val_fraction,
                                        test_fraction=test_fraction, seed=split_seed)
    return DatasetSplits(name=NAME, task=tasks.multiclass(SHAPES), train=train, val=val,
                         test=test, demo=demo)
