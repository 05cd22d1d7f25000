"""NIH ChestX-ray14 as downloaded: Data_Entry_2017.csv (or its v2020 revision), the images and
the official train_val_list.txt / test_list.txt.

Quirks handled: the bracketed headers `OriginalImage[Width,Height]` and
`OriginalImagePixelSpacing[x,y]` hold a comma, so the header has fewer names than a row has
cells (each bracketed column spans two cells); the 2017 file ends every line with a comma (an
extra empty cell) and uses CRLF line ends; ages are written `058Y` (also `M` months or `D`
days) in 2017 and as plain numbers in v2020. Columns are found by name, not position.
Images are found in `images/` or in `images_001/images/ ... images_012/images/`.
"""

from __future__ import annotations

import math
import pathlib
import re

import numpy as np

from jaxtl.data.chest.labels import CXR14_LABELS
from jaxtl.data.chest.table import ChestTable
from jaxtl.data.records import DataError
from jaxtl.data.text_files import read_csv, read_lines

LABEL_FILES = ("Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv")
SPLIT_FILES = {"train_val": "train_val_list.txt", "test": "test_list.txt"}
REQUIRED = ("Image Index", "Finding Labels", "Patient ID", "View Position")
_AGE = re.compile(r"^(\d+)\s*([YMD]?)$", re.IGNORECASE)
_AGE_UNIT_YEARS = {"": 1.0, "Y": 1.0, "M": 1 / 12, "D": 1 / 365.25}


def labels_file(root: pathlib.Path) -> pathlib.Path:
    if not root.is_dir():
        raise DataError(f"ChestX-ray14 root {root} does not exist; set --config.data.root to "
                        f"the folder holding Data_Entry_2017.csv and the images, or leave it "
                        f"empty for the demo data")
    for name in LABEL_FILES:
        if (root / name).is_file():
            return root / name
    raise DataError(f"{root} holds neither {' nor '.join(LABEL_FILES)}: a ChestX-ray14 root "
                    f"must hold the label file, the images and train_val_list.txt/test_list.txt")


def cell_columns(header: list[str]) -> dict[str, int]:
    """Column name -> cell index; a bracketed two-value header spans two cells."""
    columns, cell = {}, 0
    names = [name.strip() for name in header]
    index = 0
    while index < len(names):
        name = names[index]
        if "[" in name and "]" not in name and index + 1 < len(names):
            joined = f"{name},{names[index + 1]}"  # 'OriginalImage[Width', 'Height]'
            columns[joined] = cell
            cell += 2
            index += 2
            continue
        if name:
            columns[name] = cell
        cell += 1
        index += 1
    return columns


def parse_age(text: str) -> float:
    match = _AGE.match(text.strip())
    if match is None:
        return math.nan
    return float(match.group(1)) * _AGE_UNIT_YEARS[match.group(2).upper()]


def read_labels(root: pathlib.Path) -> ChestTable:
    path = labels_file(root)
    rows = read_csv(path)
    if not rows:
        raise DataError(f"{path} is empty")
    columns = cell_columns(rows[0])
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        raise DataError(f"{path}: the header lacks {', '.join(missing)}; found "
                        f"{','.join(rows[0])}")
    sex_column = columns.get("Patient Gender", columns.get("Patient Sex"))
    age_column = columns.get("Patient Age")
    rows = [row for row in rows[1:] if any(cell.strip() for cell in row)]
    used = [columns[name] for name in REQUIRED] + [c for c in (sex_column, age_column) if c]
    needed = max(used) + 1
    image_ids, patients, findings, views, sexes, ages = [], [], [], [], [], []
    for line, row in enumerate(rows, start=2):
        if len(row) < needed:
            raise DataError(f"{path}, line {line}: expected at least {needed} cells, found "
                            f"{len(row)}")
        image_ids.append(row[columns["Image Index"]].strip())
        patients.append(str(int(row[columns["Patient ID"]])))
        findings.append(row[columns["Finding Labels"]].strip())
        views.append(row[columns["View Position"]].strip())
        sexes.append(row[sex_column].strip() if sex_column is not None else "")
        ages.append(parse_age(row[age_column]) if age_column is not None else math.nan)
    known = set(CXR14_LABELS) | {"No Finding"}
    labels = {name: np.zeros(len(rows)) for name in (*CXR14_LABELS, "No Finding")}
    for index, text in enumerate(findings):
        for finding in text.split("|"):
            finding = finding.strip()
            if finding not in known:
                raise DataError(f"{path}, line {index + 2}: unknown finding {finding!r}; "
                                f"ChestX-ray14 findings are {', '.join(sorted(known))}")
            labels[finding][index] = 1.0
    return ChestTable(image_ids=image_ids, paths=["" for _ in image_ids], patients=patients,
                      studies=[f"{p}/{i}" for p, i in zip(patients, image_ids)],
                      frontal=np.ones(len(rows), bool), view=views, sex=sexes,
                      age=np.asarray(ages), labels=labels, source=["" for _ in image_ids])


def read_split_list(root: pathlib.Path, split: str) -> set[str]:
    path = root / SPLIT_FILES[split]
    if not path.is_file():
        raise DataError(f"{path} not found: the official ChestX-ray14 split needs "
                        f"{SPLIT_FILES['train_val']} and {SPLIT_FILES['test']} in the root; "
                        f"or set --config.chest.split=patient")
    return set(read_lines(path))


def image_folders(root: pathlib.Path) -> list[pathlib.Path]:
    folders = [root / "images"] + sorted(root.glob("images_*/images"))
    return [folder for folder in folders if folder.is_dir()]


def read(root: pathlib.Path, *, official_split: bool) -> ChestTable:
    """The label table; with `official_split`, `source` is 'train_val' or 'test' per row."""
    table = read_labels(root)
    table.paths = [f"{root}/images/{name}" for name in table.image_ids]
    if official_split:
        train_val, test = read_split_list(root, "train_val"), read_split_list(root, "test")
        unlisted = [name for name in table.image_ids if name not in train_val | test]
        if unlisted:
            raise DataError(f"{len(unlisted)} images of the label file are in neither "
                            f"{SPLIT_FILES['train_val']} nor {SPLIT_FILES['test']} (first: "
                            f"{unlisted[0]})")
        labelled = set(table.image_ids)
        for split, listed in (("train_val", train_val), ("test", test)):
            unknown = sorted(listed - labelled)
            if unknown:
                raise DataError(f"{root / SPLIT_FILES[split]} names {len(unknown)} images that "
                                f"the label file does not have (first: {unknown[0]}); use the "
                                f"lists that came with the label file")
        table.source = ["test" if name in test else "train_val" for name in table.image_ids]
    return table
