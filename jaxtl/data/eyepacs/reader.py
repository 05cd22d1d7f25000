"""EyePACS (Kaggle Diabetic Retinopathy Detection) as downloaded: trainLabels.csv + train/*.jpeg.

Split rule: the Kaggle training labels are split by patient, so the left and right eye of a
patient are always in the same split. The sorted patient ids are permuted with
`numpy.random.default_rng(split_seed)`; the first round(test_fraction * P) patients form the
test split, the next round(val_fraction * P) the validation split, the rest the training split.
The same CSV, fractions and seed always give the same split.

The Kaggle test set: when the root also holds `retinopathy_solution.csv` (image,level,Usage;
published after the competition) and `test/*.jpeg`, it can be the test split instead
(`eyepacs.test_set`), scored as a whole and per Usage: Public (the public leaderboard, 10,906
images) and Private (the final ranking, 42,670).
"""

from __future__ import annotations

import pathlib
import re

from jaxtl.core import tasks
from jaxtl.data.records import DataError, DatasetSplits, Record
from jaxtl.data.splits import split_by_patient
from jaxtl.data.text_files import read_csv

NAME = "eyepacs"
CLASS_NAMES = ("0 none", "1 mild", "2 moderate", "3 severe", "4 proliferative")
LABELS_FILE = "trainLabels.csv"
IMAGE_DIR = "train"
TEST_LABELS_FILE = "retinopathy_solution.csv"  # published after the competition
TEST_IMAGE_DIR = "test"
USAGES = ("Public", "Private")  # the public and private leaderboard halves of the test set
TEST_SETS = ("auto", "kaggle", "holdout")
_IMAGE_ID = re.compile(r"^(\d+)_(left|right)$")


def read_labels(root: pathlib.Path) -> list[Record]:
    """Parses trainLabels.csv; every row must name an existing train/{image}.jpeg."""
    if not root.is_dir():
        raise DataError(f"EyePACS root {root} does not exist; set --config.data.root to the "
                        f"folder holding {LABELS_FILE} and {IMAGE_DIR}/, or leave it empty "
                        f"for the demo data")
    return [record for record, _ in _read_rows(root, LABELS_FILE, IMAGE_DIR, ("image", "level"))]


def has_test_labels(root: pathlib.Path) -> bool:
    """Whether the root holds the Kaggle test labels and the test images."""
    return (root / TEST_LABELS_FILE).is_file() and (root / TEST_IMAGE_DIR).is_dir()


def read_test_labels(root: pathlib.Path) -> tuple[list[Record], list[str]]:
    """The Kaggle test set: records from retinopathy_solution.csv (image,level,Usage) with
    test/{image}.jpeg, and the Usage (Public or Private) of each."""
    rows = _read_rows(root, TEST_LABELS_FILE, TEST_IMAGE_DIR, ("image", "level", "Usage"))
    return [record for record, _ in rows], [usage for _, usage in rows]


def _read_rows(root: pathlib.Path, file: str, folder: str,
               header: tuple[str, ...]) -> list[tuple[Record, str]]:
    """(record, Usage or '') per row of a Kaggle labels file; every image must exist."""
    labels_path = root / file
    if not labels_path.is_file():
        raise DataError(f"{labels_path} not found: an EyePACS root must hold {file} "
                        f"(columns {','.join(header)}) and the folder {folder}/ of .jpeg files")
    rows = read_csv(labels_path)
    if not rows or [cell.strip() for cell in rows[0]] != list(header):
        found = rows[0] if rows else "an empty file"
        raise DataError(f"{labels_path}: expected the header '{','.join(header)}', found "
                        f"{found}")
    image_dir = root / folder
    present = {p.stem for p in image_dir.glob("*.jpeg")} if image_dir.is_dir() else set()
    records, missing = [], []
    for line_number, row in enumerate(rows[1:], start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DataError(f"{labels_path}, line {line_number}: expected {len(header)} cells "
                            f"({','.join(header)}), found {len(row)}: {row}")
        image_id, level = row[0].strip(), row[1].strip()
        usage = row[2].strip() if len(header) == 3 else ""
        match = _IMAGE_ID.match(image_id)
        if match is None:
            raise DataError(f"{labels_path}, line {line_number}: image {image_id!r} is not "
                            f"of the form <patient>_left or <patient>_right")
        if level not in {"0", "1", "2", "3", "4"}:
            raise DataError(f"{labels_path}, line {line_number}: level {level!r} of "
                            f"{image_id} is not a grade 0..4")
        if len(header) == 3 and usage not in USAGES:
            raise DataError(f"{labels_path}, line {line_number}: Usage {usage!r} of "
                            f"{image_id} is not one of {', '.join(USAGES)}")
        if image_id not in present:
            missing.append(image_id)
            continue
        records.append((Record(image_id=image_id, path=str(image_dir / f"{image_id}.jpeg"),
                               label=int(level), patient=match.group(1)), usage))
    if missing:
        raise DataError(f"{len(missing)} of {len(rows) - 1} images listed in {labels_path} are "
                        f"missing from {image_dir} (first: {', '.join(missing[:3])}.jpeg); "
                        f"unpack the complete {folder} archive there")
    if not records:
        raise DataError(f"{labels_path} lists no images")
    return records


def load(root: str | pathlib.Path, *, val_fraction: float, test_fraction: float,
         split_seed: int, demo: bool = False, test_set: str = "holdout") -> DatasetSplits:
    """Train, val and test splits. `test_set`: 'holdout' takes test_fraction of the training
    patients; 'kaggle' takes the Kaggle test set (retinopathy_solution.csv + test/), scored
    also per Usage (Public, Private), and splits the training patients into train and val
    only; 'auto' is 'kaggle' when the root holds both, else 'holdout'."""
    if test_set not in TEST_SETS:
        raise ValueError(f"unknown test_set {test_set!r}; choose one of {', '.join(TEST_SETS)}")
    root = pathlib.Path(root).expanduser().resolve()
    records = read_labels(root)
    kaggle = test_set == "kaggle" or (test_set == "auto" and has_test_labels(root))
    if not kaggle:
        train, val, test = split_by_patient(records, val_fraction=val_fraction,
                                            test_fraction=test_fraction, seed=split_seed)
        return DatasetSplits(name=NAME, task=tasks.multiclass(CLASS_NAMES), train=train,
                             val=val, test=test, demo=demo)
    if not has_test_labels(root):
        raise DataError(f"eyepacs.test_set is 'kaggle' but {root} lacks {TEST_LABELS_FILE} "
                        f"or {TEST_IMAGE_DIR}/; add both, or use test_set 'holdout'")
    train, val, _ = split_by_patient(records, val_fraction=val_fraction, test_fraction=0.0,
                                     seed=split_seed)
    test, usages = read_test_labels(root)
    subsets = {usage: tuple(i for i, u in enumerate(usages) if u == usage) for usage in USAGES}
    return DatasetSplits(name=NAME, task=tasks.multiclass(CLASS_NAMES), train=train,
                         val=val, test=test, demo=demo, subsets={"test": subsets})
