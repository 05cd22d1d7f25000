"""CoNSeP segmentation (`consep_seg`): its config settings and checks, and the spec.

The same download (and the same demo data) as `consep`, read as whole tiles with their
`inst_map` and `type_map` (jaxtl/data/consep/segmentation.py). `data.resolution` is the side of
the training crops and of the sliding windows of evaluation; `data.train_per_class` is the
number of training tiles (-1: all).
"""

from __future__ import annotations

import pathlib

import ml_collections

from jaxtl.core import tasks
from jaxtl.core.settings import Setting, choice, number, parse_augment
from jaxtl.data.cache import cache_root
from jaxtl.data.consep import demo, reader, segmentation
from jaxtl.data.records import DatasetSplits, Record
from jaxtl.data.registry import DatasetSpec, SegmentationData

SETTINGS = {
    "data": {"task": Setting("type4", choice(*segmentation.TASKS),
                             "'type4': background + HoVer-Net's 4 merged types; 'type7': + the "
                             "7 types; 'nuclei': background and nucleus")},
    "consep_seg": {
        "test_tiles": Setting(0, number(0, None, integer=True),
                              "0 = the official Test/ tiles; K = K tiles drawn by seed"),
        "val_tiles": Setting(3, number(1, None, integer=True),
                             "training tiles held out for validation (seeded)"),
        "crops_per_tile": Setting(8, number(1, 10_000, integer=True),
                                  "random crops of each training tile per epoch"),
        "stain_jitter": Setting(0.0, number(0.0, 0.5),
                                "H&E augmentation strength (Tellez: 0.05); 0 off"),
    },
}
DEFAULTS = {
    "data.augment": "flip,rotate",  # flips and 90-degree rotations of the crops
    "eval.best_metric": "dice_nuclei",
    "demo.num_patients": 41,  # tiles: 27 Train, 14 Test, as CoNSeP
    "demo.image_size": 256,  # tile side (real tiles: 1000 px)
}


def load(root: pathlib.Path, config: ml_collections.ConfigDict, demo_run: bool) -> DatasetSplits:
    section = config.consep_seg
    cache = segmentation.build_tile_cache(root, cache_dir=cache_root(config),
                                          skip_bad_tiles=config.data.bad_images == "skip")
    found = segmentation.records(cache)
    split_of = reader.split_tiles([r.image_id for r in found],
                                  [t.folder for t in cache.tiles],
                                  test_tiles=section.test_tiles, val_tiles=section.val_tiles,
                                  seed=config.data.split_seed)
    by_split: dict[str, list[Record]] = {"train": [], "val": [], "test": []}
    for record in found:
        by_split[split_of[record.image_id]].append(record)
    task = tasks.segmentation(segmentation.class_names(config.data.task),
                              ce_weight=config.seg.ce_weight,
                              dice_weight=config.seg.dice_weight)
    return DatasetSplits(name=segmentation.NAME, task=task, train=by_split["train"],
                         val=by_split["val"], test=by_split["test"], demo=demo_run)


def write_demo(root: pathlib.Path, config: ml_collections.ConfigDict) -> None:
    demo.write_demo_dataset(root, num_tiles=config.demo.num_patients,
                            tile_size=config.demo.image_size, seed=config.demo.seed)


def check(config: ml_collections.ConfigDict) -> list[str]:
    problems = []
    if config.data.channels != 3:
        problems.append(f"data.channels is {config.data.channels}; CoNSeP tiles are segmented "
                        f"as RGB (3 channels)")
    if config.demo.image_size < demo.MIN_TILE_SIZE:
        problems.append(f"demo.image_size is {config.demo.image_size}; CoNSeP demo tiles are "
                        f"at least {demo.MIN_TILE_SIZE} px")
    if config.train.class_weights != "none":
        problems.append(f"train.class_weights is {config.train.class_weights!r}; segmentation "
                        f"weighs classes through seg.dice_weight (soft Dice), set it to 'none'")
    if config.seg.ce_weight + config.seg.dice_weight <= 0:
        problems.append("seg.ce_weight and seg.dice_weight are both 0; the loss needs one of "
                        "them above 0")
    unknown = set(parse_augment(config.data.augment)) - {"flip", "rotate"}
    if unknown:
        problems.append(f"data.augment is {config.data.augment!r}; segmentation crops take "
                        f"'flip' and 'rotate' (90-degree turns), not {', '.join(sorted(unknown))}"
                        f" (crops are always random)")
    return problems


def crop(config: ml_collections.ConfigDict) -> segmentation.CropExample:
    augment = set(parse_augment(config.data.augment))
    return segmentation.CropExample(
        size=config.data.resolution, task=config.data.task, flip="flip" in augment,
        rotate="rotate" in augment,
        stain_sigma=config.consep_seg.stain_jitter)


def tile(config: ml_collections.ConfigDict, record: Record):
    return segmentation.read_tile(record.path, config.data.task)


SPEC = DatasetSpec(
    name=segmentation.NAME, metrics=("dice_nuclei", "pq", "aji", "dice_mean"), load=load,
    write_demo=write_demo, settings=SETTINGS, defaults=DEFAULTS, units=("tiles", "tiles"),
    check=check,
    segmentation=SegmentationData(crop=crop,
                                  crops_per_tile=lambda config: config.consep_seg.crops_per_tile,
                                  tile=tile))
