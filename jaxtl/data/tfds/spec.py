"""TFDS datasets in jaxtl: one DatasetSpec per form (diabetic retinopathy, BigEarthNet, CheXpert).

`data.tfds` names the TFDS dataset and config (`diabetic_retinopathy_detection/btgraham-300`,
`bigearthnet/rgb`, `chexpert`), `data.tfds_dir` TFDS's data_dir holding it prepared as
ArrayRecord; with `data.tfds_dir` empty, a tiny demo dataset is prepared by TFDS from jaxtl's
synthetic data (`demo.py`). Each form has the data defaults, sections, metrics and decoders of
the matching jaxtl dataset: retinopathy grades with kappa (`tfds` section: `split`), BigEarthNet
with the `bigearthnet` section (bands, interpolation, split_dir), CheXpert with the `chest`
section. `configs/tfds.py:NAME[/CONFIG]` picks the form for NAME (`select`).
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import ml_collections

from jaxtl.core.errors import ConfigError
from jaxtl.core.settings import Rule, Section, Setting, allowing, choice
from jaxtl.data.bigearthnet import bands as band_stack
from jaxtl.data.bigearthnet import spec as bigearthnet_spec
from jaxtl.data.cache import cache_root
from jaxtl.data.chest import spec as chest_spec
from jaxtl.data.decoders import Decoder
from jaxtl.data.records import DatasetSplits
from jaxtl.data.registry import DatasetSpec
from jaxtl.data.tfds import bigearthnet, chexpert, demo, retinopathy, source
from jaxtl.data.tfds.decode import TfdsBandsDecoder, TfdsImageDecoder

LOCATION = "data.tfds_dir"


def name_rule(dataset: str, configs: tuple[str, ...]) -> Rule:
    """data.tfds must name `dataset`, with one of its configs when it has configs."""
    allowed = [f"{dataset}/{config}" for config in configs] or [dataset]

    def check(value: object) -> str | None:
        if value not in allowed:
            return (f"is {value!r}; this config reads {', '.join(allowed)} (for another TFDS "
                    f"dataset use --config configs/tfds.py:NAME[/CONFIG])")
        return None

    return allowing(", ".join(allowed))(check)


def tfds_name(default: str, dataset: str, configs: tuple[str, ...]) -> dict[str, Setting]:
    """The data.tfds setting of a form: `dataset` with one of its configs."""
    return {"tfds": Setting(default, name_rule(dataset, configs),
                            "the TFDS dataset and config this form reads, NAME[/CONFIG] "
                            "(configs/tfds.py:NAME[/CONFIG] picks the form)")}


def _with_data(settings: dict[str, Section], data: dict[str, Setting]) -> dict[str, Section]:
    """`settings` whose `data` section declares `data` too."""
    return {**settings, "data": {**settings.get("data", {}), **data}}


def tfds_config(config: ml_collections.ConfigDict) -> str:
    """The config part of data.tfds ('' when it names none)."""
    return config.data.tfds.partition("/")[2]


def _common_checks(config: ml_collections.ConfigDict) -> list[str]:
    if source.installed():
        return []
    return [f"data.tfds is {config.data.tfds!r}: reading TensorFlow Datasets needs the package "
            f"tensorflow-datasets; install it with {source.INSTALL}"]


def _builder(root: pathlib.Path, config: ml_collections.ConfigDict):
    return source.prepared_builder(config.data.tfds, root)


def _write_demo(root: pathlib.Path, config: ml_collections.ConfigDict) -> None:
    demo.write_demo_dataset(root, config.data.tfds, num_patients=config.demo.num_patients,
                            image_size=config.demo.image_size, seed=config.demo.seed)


def _image_decoder(config: ml_collections.ConfigDict) -> Decoder:
    return TfdsImageDecoder(config.data.channels)


def _spec(name: str, *, metrics: tuple[str, ...], load: Callable,
          settings: dict[str, Section], defaults: dict[str, object], check: Callable,
          decoder: Callable = _image_decoder,
          units: tuple[str, str] = ("images", "patients")) -> DatasetSpec:
    return DatasetSpec(name=name, metrics=metrics, load=load, write_demo=_write_demo,
                       settings=settings, defaults=defaults,
                       check=lambda config: _common_checks(config) + check(config),
                       decoder=decoder, units=units, location=LOCATION)


# --- diabetic_retinopathy_detection --------------------------------------------------------
RETINOPATHY_SETTINGS = {
    "data": {"task": Setting("grade", choice("grade"), "the 5 DR grades, one per image"),
             # btgraham-300: what VTAB and big_vision use
             **tfds_name(f"{retinopathy.NAME}/btgraham-300", retinopathy.NAME,
                         retinopathy.CONFIGS)},
    "tfds": {
        "split": Setting("tfds", choice(*retinopathy.SPLIT_MODES),
                         "'tfds': TFDS's train / validation (Kaggle Public) / test (Kaggle "
                         "Private); 'patient': TFDS's train split divided by patient with "
                         "data.val_fraction / data.test_fraction"),
    },
}
RETINOPATHY_DEFAULTS = {"data.augment": "crop,flip,rotate",
                        "data.rotate_degrees": 180.0,  # a fundus photograph: no orientation
                        "eval.best_metric": "kappa"}


def _retinopathy_load(root: pathlib.Path, config: ml_collections.ConfigDict,
                      is_demo: bool) -> DatasetSplits:
    return retinopathy.load(_builder(root, config), split_mode=config.tfds.split,
                            val_fraction=config.data.val_fraction,
                            test_fraction=config.data.test_fraction,
                            split_seed=config.data.split_seed, cache_dir=cache_root(config),
                            demo=is_demo)


def _channels_1_or_3(config: ml_collections.ConfigDict) -> list[str]:
    return ([] if config.data.channels in (1, 3) else
            [f"data.channels is {config.data.channels}; TFDS images load as 3 (RGB) or 1 "
             f"(grey) channels"])


RETINOPATHY = _spec(
    "tfds_retinopathy", metrics=("kappa", "accuracy", "macro_f1"), load=_retinopathy_load,
    settings=RETINOPATHY_SETTINGS, defaults=RETINOPATHY_DEFAULTS, check=_channels_1_or_3)


# --- bigearthnet ---------------------------------------------------------------------------
def rgb_statistics() -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean/std of the rgb config's 8-bit image on the 0..1 scale: the published
    band statistics (digital numbers) over TFDS's full scale of 2000 (clipping ignored)."""
    return (tuple(round(band_stack.PUBLISHED_MEAN[b] / bigearthnet.RGB_FULL_SCALE, 6)
                  for b in bigearthnet.RGB_BANDS),
            tuple(round(band_stack.PUBLISHED_STD[b] / bigearthnet.RGB_FULL_SCALE, 6)
                  for b in bigearthnet.RGB_BANDS))


def _select_bigearthnet(config: ml_collections.ConfigDict, name: str) -> None:
    config.data.tfds = name
    if tfds_config(config) == "rgb":
        config.bigearthnet.bands = "rgb"
        config.data.channels = 3
        config.data.mean, config.data.std = rgb_statistics()
    else:
        bigearthnet_spec.select_bands(config, bigearthnet_spec.DEFAULT_BANDS)


def _bigearthnet_load(root: pathlib.Path, config: ml_collections.ConfigDict,
                      is_demo: bool) -> DatasetSplits:
    return bigearthnet.load(_builder(root, config), task=config.data.task,
                            split_dir=config.bigearthnet.split_dir,
                            val_fraction=config.data.val_fraction,
                            test_fraction=config.data.test_fraction,
                            split_seed=config.data.split_seed, cache_dir=cache_root(config),
                            demo=is_demo)


def _bigearthnet_check(config: ml_collections.ConfigDict) -> list[str]:
    if tfds_config(config) == "rgb":
        problems = []
        if band_stack.parse_bands(config.bigearthnet.bands) != bigearthnet.RGB_BANDS:
            problems.append(f"bigearthnet.bands is {config.bigearthnet.bands!r}; "
                            f"{config.data.tfds} holds the 8-bit rgb image only: use 'rgb' "
                            f"(or bigearthnet/all for other bands)")
        if config.data.channels != 3:
            problems.append(f"data.channels is {config.data.channels}; {config.data.tfds} "
                            f"is 3 channels (use configs/tfds.py:{config.data.tfds})")
        return problems
    return bigearthnet_spec.check(config, LOCATION)


def _bigearthnet_decoder(config: ml_collections.ConfigDict) -> Decoder:
    if tfds_config(config) == "rgb":
        return TfdsImageDecoder(3)
    return TfdsBandsDecoder(band_stack.parse_bands(config.bigearthnet.bands),
                            config.bigearthnet.interpolation)


BIGEARTHNET = _spec(
    "tfds_bigearthnet", metrics=bigearthnet_spec.SPEC.metrics, load=_bigearthnet_load,
    # bigearthnet/all: every band, the default band selection of bigearthnet.bands
    settings=_with_data(bigearthnet_spec.SETTINGS,
                        tfds_name(f"{bigearthnet.NAME}/all", bigearthnet.NAME,
                                  bigearthnet.CONFIGS)),
    defaults=bigearthnet_spec.DEFAULTS, check=_bigearthnet_check,
    decoder=_bigearthnet_decoder, units=("patches", "patches"))


# --- chexpert ------------------------------------------------------------------------------
def _chexpert_load(root: pathlib.Path, config: ml_collections.ConfigDict,
                   is_demo: bool) -> DatasetSplits:
    return chexpert.load(_builder(root, config), config, cache_root(config), is_demo)


def _chexpert_check(config: ml_collections.ConfigDict) -> list[str]:
    problems = chest_spec.check(config)
    if config.chest.view not in chexpert.VIEWS:
        problems.append(f"chest.view is {config.chest.view!r}; TFDS's chexpert keeps only "
                        f"frontal/lateral: use {', '.join(chexpert.VIEWS)}")
    return problems


CHEXPERT = _spec(
    "tfds_chexpert", metrics=chest_spec.CHEXPERT.metrics, load=_chexpert_load,
    settings=_with_data(chest_spec.settings("chexpert"),
                        tfds_name(chexpert.NAME, chexpert.NAME, ())),
    defaults=chest_spec.DEFAULTS, check=_chexpert_check)


# --- choosing the form of a TFDS name ------------------------------------------------------
FORMS = {retinopathy.NAME: RETINOPATHY, bigearthnet.NAME: BIGEARTHNET,
         chexpert.NAME: CHEXPERT}


def dataset_for(name: str) -> str:
    """The jaxtl dataset that reads the TFDS dataset `name` ('dataset[/config]')."""
    dataset = name.partition("/")[0]
    if dataset not in FORMS:
        raise ConfigError(f"jaxtl reads the TFDS datasets {', '.join(FORMS)}; {name!r} is "
                          f"none of them (your own images: configs/csv.py or "
                          f"configs/folders.py)")
    return FORMS[dataset].name


def select(config: ml_collections.ConfigDict, name: str) -> None:
    """Sets data.tfds to `name` and the defaults that depend on its config (BigEarthNet's rgb
    image or bands); `configs/tfds.py:<name>` calls it."""
    if name.partition("/")[0] == bigearthnet.NAME:
        _select_bigearthnet(config, name)
    else:
        config.data.tfds = name
