"""CheXpert v1.0 (full or -small) as downloaded: train.csv, valid.csv, train/, valid/.

`Path` cells start with the release folder (`CheXpert-v1.0-small/train/patient00001/...`);
that first component is dropped before joining with the root, so either release unpacked
anywhere works. Only the CSVs are read: image files are not opened.
"""

from __future__ import annotations

import math
import pathlib
import re

import numpy as np

from jaxtl.data import text_files as tables
from jaxtl.data.chest.labels import CHEXPERT_LABELS
from jaxtl.data.chest.table import ChestTable
from jaxtl.data.records import DataError

CSV_FILES = ("train.csv", "valid.csv")
HEADER = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA") + CHEXPERT_LABELS
_PATIENT = re.compile(r"^patient\d+$")
_STUDY = re.compile(r"^study\d+$")
_VALUES = {"": math.nan, "1.0": 1.0, "0.0": 0.0, "-1.0": -1.0, "1": 1.0, "0": 0.0, "-1": -1.0}


def read_csv(root: pathlib.Path, name: str) -> ChestTable:
    path = root / name
    if not path.is_file():
        raise DataError(f"{path} not found: a CheXpert root must hold {' and '.join(CSV_FILES)} "
                        f"(and the train/ and valid/ image folders) as unpacked from the "
                        f"download")
    rows = tables.read_csv(path)
    if not rows or tuple(cell.strip() for cell in rows[0]) != HEADER:
        found = ",".join(rows[0]) if rows else "an empty file"
        raise DataError(f"{path}: expected the CheXpert header {','.join(HEADER)}; found "
                        f"{found}")
    rows = [row for row in rows[1:] if any(cell.strip() for cell in row)]
    bad = next((n for n, row in enumerate(rows, start=2) if len(row) != len(HEADER)), None)
    if bad is not None:
        raise DataError(f"{path}, line {bad}: expected {len(HEADER)} cells, found "
                        f"{len(rows[bad - 2])}")
    image_ids, patients, studies = [], [], []
    for line, row in enumerate(rows, start=2):
        parts = row[0].strip().split("/")
        if parts and parts[0] not in ("train", "valid"):
            parts = parts[1:]  # the release folder, e.g. CheXpert-v1.0-small
        patient = next((p for p in parts if _PATIENT.match(p)), None)
        study = next((p for p in parts if _STUDY.match(p)), None)
        if patient is None or study is None:
            raise DataError(f"{path}, line {line}: Path {row[0]!r} does not name a "
                            f"patientNNNNN/studyN folder")
        image_ids.append("/".join(parts))
        patients.append(patient)
        studies.append(f"{patient}/{study}")
    columns = list(zip(*rows)) or [()] * len(HEADER)
    labels = {}
    for offset, label in enumerate(CHEXPERT_LABELS, start=5):
        try:
            labels[label] = np.fromiter((_VALUES[cell.strip()] for cell in columns[offset]),
                                       np.float64, len(rows))
        except KeyError as error:
            raise DataError(f"{path}: column {label!r} holds {error.args[0]!r}; CheXpert label "
                            f"cells are 1.0, 0.0, -1.0 or empty") from None
    ages = [cell.strip() for cell in columns[2]]
    return ChestTable(
        image_ids=image_ids,
        paths=[f"{root}/{image_id}" for image_id in image_ids],  # str concat: 10x pathlib
        patients=patients,
        studies=studies,
        frontal=np.asarray([cell.strip() == "Frontal" for cell in columns[3]], bool),
        view=[cell.strip() for cell in columns[4]],
        sex=[cell.strip() for cell in columns[1]],
        age=np.asarray([float(a) if a and a != "0" else math.nan for a in ages], np.float64),
        labels=labels,
        source=[name.removesuffix(".csv")] * len(rows),
    )


def read(root: pathlib.Path) -> tuple[ChestTable, ChestTable]:
    """(train.csv, valid.csv) tables."""
    if not root.is_dir():
        raise DataError(f"CheXpert root {root} does not exist; set --config.data.root to the "
                        f"folder holding train.csv and valid.csv, or leave it empty for the "
                        f"demo data")
    return read_csv(root, "train.csv"), read_csv(root, "valid.csv")
