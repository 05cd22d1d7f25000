"""BigEarthNet-S2 v1.0 as downloaded: one folder per Sentinel-2 patch, one GeoTIFF per band.

    root/S2A_MSIL2A_20170617T113321_36_85/
        S2A_MSIL2A_20170617T113321_36_85_B01.tif ... _B12.tif, _B8A.tif   (12 bands, no B10)
        S2A_MSIL2A_20170617T113321_36_85_labels_metadata.json            ("labels": [...])
    <split_dir>/train.csv, val.csv, test.csv   the official split: one patch name per line,
                                               no header (snow, cloud and shadow patches left out)

The split lists are published apart from the archive (with the BigEarthNet models); put them
in the root or point `split_dir` at them. The bands and their decoder: `bands.py`.

Labels: the 43-class CORINE names of each patch's JSON, as 0/1 per label of the 19-class
nomenclature ('labels19', the published merge; see bigearthnet_labels) or of the 43 classes
('labels43'). A patch whose labels all fall into dropped classes keeps an all-zero vector (it
stays in the official test set) and is counted in the log.

Reading hundreds of thousands of JSON files takes minutes, so the labels of the listed patches
are read once and cached under `<cache_dir>/bigearthnet/labels-<key>.json`; the key hashes the
root and the contents of the three lists.
"""

from __future__ import annotations

import json
import os
import pathlib

from absl import logging

from jaxtl.core import atomic, tasks
from jaxtl.data.bigearthnet.labels import NOMENCLATURES, multi_hot
from jaxtl.data.cache import keyed_path
from jaxtl.data.records import DataError, DatasetSplits, Record
from jaxtl.data.text_files import read_lines

NAME = "bigearthnet"
SPLIT_FILES = {"train": "train.csv", "val": "val.csv", "test": "test.csv"}
LABELS_CACHE_VERSION = 1


def labels_path(folder: pathlib.Path) -> pathlib.Path:
    return folder / f"{folder.name}_labels_metadata.json"


def read_split_lists(split_dir: pathlib.Path) -> dict[str, list[str]]:
    lists = {}
    for split, file in SPLIT_FILES.items():
        path = split_dir / file
        if not path.is_file():
            raise DataError(f"{path} not found: BigEarthNet's official split lists train.csv, "
                            f"val.csv and test.csv (one patch name per line) must be in "
                            f"config.bigearthnet.split_dir, or in data.root when it is empty")
        names = [line.split(",")[0].strip() for line in read_lines(path)]
        lists[split] = [name for name in names if name]
        if not lists[split]:
            raise DataError(f"{path} lists no patches")
    return lists


def read_patch_labels(folder: pathlib.Path) -> list[str]:
    path = labels_path(folder)
    try:
        metadata = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DataError(f"{path} cannot be read as JSON ({error})") from error
    labels = metadata.get("labels") if isinstance(metadata, dict) else None
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise DataError(f"{path}: expected a 'labels' list of CORINE class names")
    return labels


def _labels_cache_file(root: pathlib.Path, lists: dict[str, list[str]],
                       cache_dir: pathlib.Path) -> pathlib.Path:
    return keyed_path(cache_dir, NAME, {"version": LABELS_CACHE_VERSION,
                                                 "root": str(root), "lists": lists},
                      prefix="labels-", suffix=".json")


def read_labels(root: pathlib.Path, lists: dict[str, list[str]],
                cache_dir: pathlib.Path) -> dict[str, list[str]]:
    """Patch name -> its 43-class labels, for every listed patch (cached)."""
    cache = _labels_cache_file(root, lists, cache_dir)
    if cache.is_file():
        return json.loads(cache.read_text())
    names = [name for split in SPLIT_FILES for name in lists[split]]
    missing = [n for n in names if not labels_path(root / n).is_file()]
    if missing:
        raise DataError(f"{len(missing)} of {len(names)} listed patches have no folder with a "
                        f"labels_metadata.json in {root} (first: {', '.join(missing[:3])}); "
                        f"unpack the complete BigEarthNet-S2 archive there")
    logging.info("BigEarthNet: reading the labels of %d patches (once; cached in %s)",
                 len(names), cache)
    labels = {name: read_patch_labels(root / name) for name in names}
    atomic.write_json(cache, labels)
    return labels


def load(root: str | os.PathLike, *, task: str, split_dir: str | os.PathLike,
         cache_dir: str | os.PathLike, demo: bool = False) -> DatasetSplits:
    if task not in NOMENCLATURES:
        raise ValueError(f"unknown BigEarthNet task {task!r}; choose one of "
                         f"{', '.join(NOMENCLATURES)}")
    root = pathlib.Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"BigEarthNet root {root} does not exist; set --config.data.root to "
                        f"the unpacked BigEarthNet-v1.0 folder, or leave it empty for the demo")
    lists = read_split_lists(pathlib.Path(split_dir).expanduser() if split_dir else root)
    labels = read_labels(root, lists, pathlib.Path(cache_dir))
    by_split: dict[str, list[Record]] = {}
    empty = 0
    for split, names in lists.items():
        records = []
        for name in names:
            vector = multi_hot(labels[name], task, where=str(labels_path(root / name)))
            empty += not any(vector)
            records.append(Record(image_id=name, path=str(root / name), label=vector,
                                  patient=name))
        by_split[split] = records
    if empty:
        logging.warning("BigEarthNet: %d listed patches have none of the %d %s labels (all their "
                        "classes are dropped); they are kept with all-negative labels", empty,
                        len(NOMENCLATURES[task]), task)
    return DatasetSplits(name=NAME, task=tasks.multilabel(NOMENCLATURES[task]),
                         train=by_split["train"], val=by_split["val"], test=by_split["test"],
                         demo=demo)
