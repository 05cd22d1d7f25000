"""BigEarthNet-S2 in jaxtl: its config section, rules and checks, decoder and spec."""

from __future__ import annotations

import pathlib

import ml_collections

from jaxtl.core.settings import choice, text
from jaxtl.data.bigearthnet import bands as band_stack
from jaxtl.data.bigearthnet import demo, reader
from jaxtl.data import loading
from jaxtl.data.cache import cache_root
from jaxtl.data.decoders import Decoder
from jaxtl.data.records import DatasetSplits
from jaxtl.data.registry import DatasetSpec

DEFAULT_BANDS = "10m20m"


def select_bands(config: ml_collections.ConfigDict, bands: str) -> None:
    """Sets bigearthnet.bands and data.channels/mean/std to the published statistics of the
    selected bands (`configs/bigearthnet.py:<bands>` calls it)."""
    selected = band_stack.parse_bands(bands)
    config.bigearthnet.bands = bands
    config.data.channels = len(selected)
    config.data.mean, config.data.std = band_stack.published_statistics(selected)


def add_config(config: ml_collections.ConfigDict) -> None:
    config.data.task = "labels19"  # 'labels19' (the 19-class nomenclature) or 'labels43'
    config.data.augment = "flip,rotate"
    config.data.rotate_degrees = 180.0  # seen from above: no preferred orientation
    config.eval.best_metric = "mean_ap"
    config.bigearthnet = ml_collections.ConfigDict()
    config.bigearthnet.bands = DEFAULT_BANDS  # named set or comma list (see bands.py)
    config.bigearthnet.interpolation = "bilinear"  # upsampling of 20 m / 60 m bands
    config.bigearthnet.split_dir = ""  # train.csv, val.csv, test.csv; empty: data.root
    select_bands(config, DEFAULT_BANDS)
    config.demo.num_patients = 1000  # patches
    config.demo.image_size = band_stack.PATCH_SIDE  # fixed: the patch side


def load(root: pathlib.Path, config: ml_collections.ConfigDict, demo: bool) -> DatasetSplits:
    return reader.load(root, task=config.data.task, split_dir=config.bigearthnet.split_dir,
                       cache_dir=cache_root(config), demo=demo)


def write_demo(root: pathlib.Path, config: ml_collections.ConfigDict) -> None:
    demo.write_demo_dataset(root, num_patches=config.demo.num_patients, seed=config.demo.seed)


def band_selection_rule(value: object) -> str | None:
    if not isinstance(value, str):
        return f"is {value!r}; expected a band selection such as '{DEFAULT_BANDS}'"
    try:
        band_stack.parse_bands(value)
    except ValueError as error:
        return f"is {error}"
    return None


def check(config: ml_collections.ConfigDict) -> list[str]:
    problems = []
    bands = band_stack.parse_bands(config.bigearthnet.bands)
    if config.data.channels != len(bands) or len(config.data.mean) != len(bands):
        mean, std = band_stack.published_statistics(bands)
        problems.append(
            f"data.channels, data.mean and data.std must match bigearthnet.bands="
            f"{config.bigearthnet.bands!r} ({len(bands)} bands: {', '.join(bands)}); with the "
            f"published statistics: --config.data.channels={len(bands)} "
            f"--config.data.mean='{mean}' --config.data.std='{std}' (or use "
            f"configs/bigearthnet.py:{config.bigearthnet.bands})")
    if config.bigearthnet.split_dir and loading.is_demo(config):
        where = loading.location_key(config.dataset)
        problems.append(f"bigearthnet.split_dir is set but {where} is empty: the demo data "
                        f"bring their own split; leave it empty or set {where}")
    if config.demo.image_size != band_stack.PATCH_SIDE:
        problems.append(f"demo.image_size is {config.demo.image_size}; BigEarthNet patches are "
                        f"{band_stack.PATCH_SIDE} px (set data.resolution to train smaller)")
    return problems


def decoder(config: ml_collections.ConfigDict) -> Decoder:
    return band_stack.BandStackDecoder(band_stack.parse_bands(config.bigearthnet.bands),
                                       config.bigearthnet.interpolation)


SPEC = DatasetSpec(
    name=reader.NAME, metrics=("mean_ap", "micro_f1", "macro_f1", "mean_auroc", "micro_ap"),
    load=load, write_demo=write_demo, add_config=add_config, units=("patches", "patches"),
    rules={"data.task": choice("labels19", "labels43"),
           "bigearthnet.bands": band_selection_rule,
           "bigearthnet.interpolation": choice(*band_stack.INTERPOLATIONS),
           "bigearthnet.split_dir": text},
    check=check, decoder=decoder)
