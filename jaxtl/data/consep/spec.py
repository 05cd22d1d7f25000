"""CoNSeP in jaxtl: its config settings and checks, decoder and spec."""

from __future__ import annotations

import pathlib

import ml_collections

from jaxtl.core.settings import Setting, choice, number
from jaxtl.data.cache import cache_root
from jaxtl.data.consep import demo, reader
from jaxtl.data.decoders import Decoder, PatchArrayDecoder
from jaxtl.data.records import DatasetSplits
from jaxtl.data.registry import DatasetSpec

SETTINGS = {
    "data": {"task": Setting("type7", choice(*reader.TASKS), "'type7': the 7 CoNSeP types; "
                             "'type4': other, inflammatory, epithelial, spindle-shaped")},
    "consep": {
        "patch_size": Setting(32, number(4, 512, integer=True),
                              "side of the nucleus-centred patch cut from the tile"),
        "border": Setting("reflect", choice(*reader.BORDERS),
                          "past a tile border: 'reflect' (mirror) or 'zero'"),
        "split": Setting("tiles", choice(*reader.SPLITS),
                         "'random' (over patches) or 'tiles' (tiles held out)"),
        "test_tiles": Setting(0, number(0, None, integer=True),
                              "'tiles': 0 = official Test/ tiles; K = K drawn tiles"),
        "val_tiles": Setting(3, number(1, None, integer=True),
                             "'tiles': training tiles held out for validation"),
    },
}
DEFAULTS = {
    "data.augment": "flip,rotate",
    "data.rotate_degrees": 180.0,  # tissue has no preferred orientation
    # 'random' split: about the share of nuclei the official Test/ tiles hold (14 of 41 tiles).
    "data.val_fraction": 0.1,
    "data.test_fraction": 0.35,
    "eval.best_metric": "accuracy",
    # The demo: 41 synthetic tiles of 256 px (27 Train, 14 Test), as many as CoNSeP has.
    "demo.num_patients": 41,  # tiles
    "demo.image_size": 256,  # tile side
}


def load(root: pathlib.Path, config: ml_collections.ConfigDict, demo: bool) -> DatasetSplits:
    # The one loader that reads images: records point into the patch cache, which is cut from
    # the tiles the first time (seconds for CoNSeP's 41 tiles) and only read afterwards.
    section = config.consep
    return reader.load(root, task=config.data.task, patch_size=section.patch_size,
                       border=section.border, split=section.split,
                       test_tiles=section.test_tiles, val_tiles=section.val_tiles,
                       val_fraction=config.data.val_fraction,
                       test_fraction=config.data.test_fraction,
                       split_seed=config.data.split_seed, cache_dir=cache_root(config),
                       demo=demo, skip_bad_tiles=config.data.bad_images == "skip")


def write_demo(root: pathlib.Path, config: ml_collections.ConfigDict) -> None:
    demo.write_demo_dataset(root, num_tiles=config.demo.num_patients,
                            tile_size=config.demo.image_size, seed=config.demo.seed)


def check(config: ml_collections.ConfigDict) -> list[str]:
    problems = []
    if config.data.channels not in (1, 3):
        problems.append(f"data.channels is {config.data.channels}; CoNSeP patches load as 3 "
                        f"(RGB) or 1 (grey) channels")
    if config.demo.image_size < demo.MIN_TILE_SIZE:
        problems.append(f"demo.image_size is {config.demo.image_size}; CoNSeP demo tiles are "
                        f"at least {demo.MIN_TILE_SIZE} px")
    return problems


def decoder(config: ml_collections.ConfigDict) -> Decoder:
    return PatchArrayDecoder(config.data.channels)


SPEC = DatasetSpec(
    name=reader.NAME, metrics=("accuracy", "macro_f1"), load=load, write_demo=write_demo,
    settings=SETTINGS, defaults=DEFAULTS, units=("patches", "tiles"), check=check,
    decoder=decoder, pixel_settings=("consep.patch_size", "consep.border"))
