"""CoNSeP in jaxtl: its config section, rules and checks, decoder and spec."""

from __future__ import annotations

import pathlib

import ml_collections

from jaxtl.core.settings import choice, number
from jaxtl.data.cache import cache_root
from jaxtl.data.consep import demo, reader
from jaxtl.data.decoders import Decoder, PatchArrayDecoder
from jaxtl.data.records import DatasetSplits
from jaxtl.data.registry import DatasetSpec


def add_config(config: ml_collections.ConfigDict) -> None:
    # 'type7': the 7 CoNSeP types; 'type4': other, inflammatory, epithelial, spindle-shaped
    config.data.task = "type7"
    config.data.augment = "flip,rotate"
    config.data.rotate_degrees = 180.0  # tissue has no preferred orientation
    # 'random' split: about the share of nuclei the official Test/ tiles hold (14 of 41 tiles).
    config.data.val_fraction = 0.1
    config.data.test_fraction = 0.35
    config.eval.best_metric = "accuracy"
    config.consep = ml_collections.ConfigDict()
    config.consep.patch_size = 32  # side of the nucleus-centred patch cut from the tile
    config.consep.border = "reflect"  # past a tile border: 'reflect' (mirror) or 'zero'
    config.consep.split = "tiles"  # 'random' (over patches) or 'tiles' (tiles held out)
    config.consep.test_tiles = 0  # 'tiles': 0 = official Test/ tiles; K = K drawn tiles
    config.consep.val_tiles = 3  # 'tiles': training tiles held out for validation
    # The demo: 41 synthetic tiles of 256 px (27 Train, 14 Test), as many as CoNSeP has.
    config.demo.num_patients = 41  # tiles
    config.demo.image_size = 256  # tile side


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
    add_config=add_config, units=("patches", "tiles"),
    rules={"data.task": choice(*reader.TASKS),
           "consep.patch_size": number(4, 512, integer=True),
           "consep.border": choice(*reader.BORDERS),
           "consep.split": choice(*reader.SPLITS),
           "consep.test_tiles": number(0, None, integer=True),
           "consep.val_tiles": number(1, None, integer=True)},
    check=check, decoder=decoder, pixel_settings=("consep.patch_size", "consep.border"))
