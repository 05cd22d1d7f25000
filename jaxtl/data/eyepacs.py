"""EyePACS (Kaggle Diabetic Retinopathy Detection) as downloaded: trainLabels.csv + train/*.jpeg.

Split rule: the Kaggle training labels are split by patient, so the left and right eye of a
patient are always in the same split. The sorted patient ids are permuted with
`numpy.random.default_rng(split_seed)`; the first round(test_fraction * P) patients form the
test split, the next round(val_fraction * P) the validation split, the rest the training split.
The same CSV, fractions and seed always give the same split.
"""

from __future__ import annotations

import csv
import pathlib
import re

from jaxtl import tasks
from jaxtl.data.records import DataError, DatasetSplits, Record
from jaxtl.data.splits import split_by_patient

CLASS_NAMES = ("0 none", "1 mild", "2 moderate", "3 severe", "4 proliferative")
LABELS_FILE = "trainLabels.csv"
IMAGE_DIR = "train"
_IMAGE_ID = re.compile(r"^(\d+)_(left|right)$")


def read_labels(root: pathlib.Path) -> list[Record]:
    """Parses trainLabels.csv; every row must name an existing train/{image}.jpeg."""
    labels_path = root / LABELS_FILE
    if not root.is_dir():
        raise DataError(f"EyePACS root {root} does not exist; set --config.data.root to the "
                        f"folder holding {LABELS_FILE} and {IMAGE_DIR}/, or leave it empty "
                        f"for the demo data")
    if not labels_path.is_file():
        raise DataError(f"{labels_path} not found: an EyePACS root must hold {LABELS_FILE} "
                        f"(columns image,level) and the folder {IMAGE_DIR}/ of .jpeg files")
    with labels_path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows or [cell.strip() for cell in rows[0]] != ["image", "level"]:
        found = rows[0] if rows else "an empty file"
        raise DataError(f"{labels_path}: expected the header 'image,level', found {found}")
    image_dir = root / IMAGE_DIR
    present = {p.stem for p in image_dir.glob("*.jpeg")} if image_dir.is_dir() else set()
    records, missing = [], []
    for line_number, row in enumerate(rows[1:], start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != 2:
            raise DataError(f"{labels_path}, line {line_number}: expected 2 cells "
                            f"(image,level), found {len(row)}: {row}")
        image_id, level = row[0].strip(), row[1].strip()
        match = _IMAGE_ID.match(image_id)
        if match is None:
            raise DataError(f"{labels_path}, line {line_number}: image {image_id!r} is not "
                            f"of the form <patient>_left or <patient>_right")
        if level not in {"0", "1", "2", "3", "4"}:
            raise DataError(f"{labels_path}, line {line_number}: level {level!r} of "
                            f"{image_id} is not a grade 0..4")
        if image_id not in present:
            missing.append(image_id)
            continue
        records.append(Record(image_id=image_id, path=str(image_dir / f"{image_id}.jpeg"),
                              label=int(level), patient=match.group(1)))
    if missing:
        raise DataError(f"{len(missing)} of {len(rows) - 1} images listed in {labels_path} are "
                        f"missing from {image_dir} (first: {', '.join(missing[:3])}.jpeg); "
                        f"unpack the complete train archive there")
    if not records:
        raise DataError(f"{labels_path} lists no images")
    return records


def load(root: str | pathlib.Path, *, val_fraction: float, test_fraction: float,
         split_seed: int, demo: bool = False) -> DatasetSplits:
    records = read_labels(pathlib.Path(root).expanduser().resolve())
    train, val, test = split_by_patient(records, val_fraction=val_fraction,
                                        test_fraction=test_fraction, seed=split_seed)
    return DatasetSplits(name="eyepacs", task=tasks.multiclass(CLASS_NAMES), train=train, val=val,
                         test=test, demo=demo)
