"""BigEarthNet-S2 in jaxtl: its config settings and checks, decoder and spec."""

from __future__ import annotations

import pathlib

import ml_collections

from jaxtl.core.settings import Setting, allowing, choice, text
from jaxtl.data.bigearthnet import bands as band_stack
from jaxtl.data.bigearthnet import demo, reader
from jaxtl.data.cache import cache_root
from jaxtl.data.decoders import Decoder
from jaxtl.data.records import DatasetSplits
from jaxtl.data.registry import DatasetSpec

DEFAULT_BANDS = "10m20m"


def band_defaults(bands: str) -> dict[str, object]:
    """data.channels, data.mean and data.std for the band selection `bands`: one channel per
    band, with the published statistics of the bands."""
    selected = band_stack.parse_bands(bands)
    mean, std = band_stack.published_statistics(selected)
    return {"data.channels": len(selected), "data.mean": mean, "data.std": std}


def select_bands(config: ml_collections.ConfigDict, bands: str) -> None:
    """Sets bigearthnet.bands and data.channels/mean/std to the published statistics of the
    selected bands (`configs/bigearthnet.py:<bands>` calls it)."""
    config.bigearthnet.bands = bands
    for key, value in band_defaults(bands).items():
        section, name = key.split(".")
        config[section][name] = value


def load(root: pathlib.Path, config: ml_collections.ConfigDict, demo: bool) -> DatasetSplits:
    return reader.load(root, task=config.data.task, split_dir=config.bigearthnet.split_dir,
                       cache_dir=cache_root(config), demo=demo)


def write_demo(root: pathlib.Path, config: ml_collections.ConfigDict) -> None:
    demo.write_demo_dataset(root, num_patches=config.demo.num_patients, seed=config.demo.seed)


@allowing(f"a named band set ({', '.join(band_stack.BAND_SETS)}) or a comma list of bands "
          f"({', '.join(band_stack.BANDS)})")
def band_selection_rule(value: object) -> str | None:
    if not isinstance(value, str):
        return f"is {value!r}; expected a band selection such as '{DEFAULT_BANDS}'"
    try:
        band_stack.parse_bands(value)
    except ValueError as error:
        return f"is {error}"
    return None


SETTINGS = {
    "data": {"task": Setting("labels19", choice("labels19", "labels43"),
                             "'labels19' (the 19-class nomenclature) or 'labels43'")},
    "bigearthnet": {
        "bands": Setting(DEFAULT_BANDS, band_selection_rule,
                         "named set or comma list of bands (see bands.py); data.channels, "
                         "data.mean and data.std follow it (configs/bigearthnet.py:BANDS)"),
        "interpolation": Setting("bilinear", choice(*band_stack.INTERPOLATIONS),
                                 "upsampling of 20 m / 60 m bands"),
        "split_dir": Setting("", text, "the folder of train.csv, val.csv, test.csv; empty: "
                             "data.root"),
    },
}
DEFAULTS = {"data.augment": "flip,rotate",
            "data.rotate_degrees": 180.0,  # seen from above: no preferred orientation
            "eval.best_metric": "mean_ap",
            **band_defaults(DEFAULT_BANDS),
            "demo.num_patients": 1000,  # patches
            "demo.image_size": band_stack.PATCH_SIDE}  # fixed: the patch side


def check(config: ml_collections.ConfigDict, location: str = "data.root") -> list[str]:
    """`location`: the key naming where the data are (the TFDS form reads data.tfds_dir)."""
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
    section, key = location.split(".")
    if config.bigearthnet.split_dir and not config[section][key]:
        problems.append(f"bigearthnet.split_dir is set but {location} is empty: the demo data "
                        f"bring their own split; leave it empty or set {location}")
    if config.demo.image_size != band_stack.PATCH_SIDE:
        problems.append(f"demo.image_size is {config.demo.image_size}; BigEarthNet patches are "
                        f"{band_stack.PATCH_SIDE} px (set data.resolution to train smaller)")
    return problems


def decoder(config: ml_collections.ConfigDict) -> Decoder:
    return band_stack.BandStackDecoder(band_stack.parse_bands(config.bigearthnet.bands),
                                       config.bigearthnet.interpolation)


SPEC = DatasetSpec(
    name=reader.NAME, metrics=("mean_ap", "micro_f1", "macro_f1", "mean_auroc", "micro_ap"),
    load=load, write_demo=write_demo, settings=SETTINGS, defaults=DEFAULTS,
    units=("patches", "patches"), check=check, decoder=decoder)
