"""TFDS `bigearthnet` (`rgb` and `all`): multi-label land cover of Sentinel-2 patches.

TFDS holds all 590,326 patches of BigEarthNet-S2 v1.0 in one split, `train`. Every example has
`filename` (the patch name), `labels` (its 43-class CORINE labels) and `metadata`, and either
`image` (`rgb`: B04, B03, B02 as 8-bit PNG, each digital number / 2000 * 255 clipped to 255) or
the 12 bands `B01` ... `B12` (`all`: float32 digital numbers at their own 120 / 60 / 20 px).
Labels map to the 19-class nomenclature or stay 43 as for jaxtl's bigearthnet dataset
(`data.task`, `jaxtl/data/bigearthnet/labels.py`).

Splits: with `bigearthnet.split_dir`, the official train.csv / val.csv / test.csv (patch names;
snow, cloud and shadow patches are in none and are left out, counted in the log). Without it,
the patches are divided at random, seeded: sorted patch names permuted with
`default_rng(data.split_seed)`, the first data.test_fraction of them test, the next
data.val_fraction val, the rest train (`jaxtl.data.splits.assign_patients`, each patch its own
group). Neighbouring patches of one tile then fall on both sides, which the official lists
avoid: use them for results to compare with published ones.
"""

from __future__ import annotations

import pathlib
from typing import Any

from absl import logging

from jaxtl.core import tasks
from jaxtl.data.bigearthnet.labels import NOMENCLATURES, multi_hot
from jaxtl.data.bigearthnet.reader import read_split_lists
from jaxtl.data.records import SPLITS, DataError, DatasetSplits, Record
from jaxtl.data.splits import assign_patients
from jaxtl.data.tfds import source

NAME = "bigearthnet"
CONFIGS = ("rgb", "all")
RGB_BANDS = ("B04", "B03", "B02")  # the rgb config's image channels, in order
RGB_FULL_SCALE = 2000.0  # digital number that TFDS's rgb config maps to 255


def load(builder: Any, *, task: str, split_dir: str, val_fraction: float,
         test_fraction: float, split_seed: int, cache_dir: pathlib.Path,
         demo: bool) -> DatasetSplits:
    columns = source.read_columns(builder, "train", ("filename", "labels"), cache_dir)
    label_names = builder.info.features["labels"].feature.names
    filenames = columns["filename"]
    if split_dir:
        lists = read_split_lists(pathlib.Path(split_dir).expanduser())
        split_of = {name: split for split, names in lists.items() for name in names}
        present = set(filenames)
        missing = [name for name in split_of if name not in present]
        if missing:
            raise DataError(f"{len(missing)} patches of the lists in {split_dir} are not in "
                            f"{builder.data_dir} (first: {', '.join(missing[:3])}); the lists "
                            f"and the TFDS dataset must come from the same BigEarthNet-S2")
        unlisted = len(filenames) - sum(name in split_of for name in filenames)
        if unlisted:
            logging.info("%s: %d patches are in none of the split lists (snow, cloud, shadow) "
                         "and are left out", NAME, unlisted)
    else:
        split_of = assign_patients(filenames, {"test": test_fraction, "val": val_fraction,
                                               "train": 1.0}, split_seed)
    by_split: dict[str, list[Record]] = {split: [] for split in SPLITS}
    empty = 0
    for index, (name, labels) in enumerate(zip(filenames, columns["labels"])):
        if name not in split_of:
            continue
        vector = multi_hot([label_names[label] for label in labels], task,
                           where=f"{builder.data_dir}, example {index} ({name})")
        empty += not any(vector)
        by_split[split_of[name]].append(Record(
            image_id=name, path=source.record_path(builder, "train", index), label=vector,
            patient=name))
    if empty:
        logging.warning("%s: %d patches have none of the %d %s labels (all their classes are "
                        "dropped); they are kept with all-negative labels", NAME, empty,
                        len(NOMENCLATURES[task]), task)
    return DatasetSplits(name=NAME, task=tasks.multilabel(NOMENCLATURES[task]),
                         train=by_split["train"], val=by_split["val"], test=by_split["test"],
                         demo=demo)
