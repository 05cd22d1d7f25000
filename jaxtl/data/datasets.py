"""Which datasets jaxtl reads: each entry knows how to load its real layout and write its demo.

A spec also brings the config rules of its own keys: `data.task` (which tasks the dataset
offers) and the keys of its section (e.g. `config.chest`), plus `check(config)` for rules that
involve several keys, and `decoder(config)`, how its images are decoded (`jaxtl.data.transforms`:
image files through Pillow by default, arrays for CoNSeP patches and BigEarthNet bands).
`jaxtl.configuration.validate` applies the rules with the common ones.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable, Mapping

import ml_collections

from jaxtl.config_rules import Rule, choice, number, text
from jaxtl.data.records import DatasetSplits
from jaxtl.data.transforms import Decoder, ImageFileDecoder

Loader = Callable[[pathlib.Path, ml_collections.ConfigDict, bool], DatasetSplits]


def _no_checks(config: ml_collections.ConfigDict) -> list[str]:
    del config
    return []


def _files_checked_on_load(root: pathlib.Path, splits: DatasetSplits) -> DatasetSplits:
    del root
    return splits


def _image_files(config: ml_collections.ConfigDict) -> Decoder:
    return ImageFileDecoder(config.data.channels)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    name: str
    metrics: tuple[str, ...]  # validation metrics that may select the best checkpoint
    load: Loader  # (root, config, demo) -> splits; must not open image files
    write_demo: Callable[[pathlib.Path, ml_collections.ConfigDict], None]
    rules: Mapping[str, Rule]  # "data.task" and the dataset's own keys
    check: Callable[[ml_collections.ConfigDict], list[str]] = _no_checks
    # (root, splits after sampling) -> splits whose image files exist; a clear error otherwise.
    # Training calls it; `python -m jaxtl.data.stats` does not (it reads label files only).
    resolve_files: Callable[[pathlib.Path, DatasetSplits], DatasetSplits] = _files_checked_on_load
    # config -> the decoder of this dataset's `Record.path`s (picklable, for Grain workers)
    decoder: Callable[[ml_collections.ConfigDict], Decoder] = _image_files
    # what a Record and its grouping id (Record.patient) are called in reports such as stats
    units: tuple[str, str] = ("images", "patients")


def _load_eyepacs(root: pathlib.Path, config: ml_collections.ConfigDict,
                  demo: bool) -> DatasetSplits:
    from jaxtl.data import eyepacs

    return eyepacs.load(root, val_fraction=config.data.val_fraction,
                        test_fraction=config.data.test_fraction,
                        split_seed=config.data.split_seed, demo=demo,
                        test_set=config.eyepacs.test_set)


def _write_eyepacs_demo(root: pathlib.Path, config: ml_collections.ConfigDict) -> None:
    from jaxtl.data import eyepacs_demo

    eyepacs_demo.write_demo_dataset(root, num_patients=config.demo.num_patients,
                                    image_size=config.demo.image_size, seed=config.demo.seed)


def _eyepacs_checks(config: ml_collections.ConfigDict) -> list[str]:
    return ([] if config.data.channels in (1, 3) else
            [f"data.channels is {config.data.channels}; EyePACS photographs load as 3 (RGB) "
             f"or 1 (grey) channels"])


_REGISTRY: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> None:
    if spec.name in _REGISTRY:
        raise ValueError(f"dataset {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec


def _eyepacs_decoder(config: ml_collections.ConfigDict) -> Decoder:
    from jaxtl.data.eyepacs_preprocess import GrahamPreprocess

    graham = config.eyepacs.preprocess == "graham"
    return ImageFileDecoder(config.data.channels, GrahamPreprocess() if graham else None)


register(DatasetSpec(name="eyepacs", metrics=("kappa", "accuracy", "macro_f1"),
                     load=_load_eyepacs, write_demo=_write_eyepacs_demo,
                     rules={"data.task": choice("grade"),
                            "eyepacs.preprocess": choice("none", "graham"),
                            "eyepacs.test_set": choice("auto", "kaggle", "holdout")},
                     check=_eyepacs_checks, decoder=_eyepacs_decoder))


def _chest_spec(name: str) -> DatasetSpec:
    from jaxtl.data import chest

    def load(root: pathlib.Path, config: ml_collections.ConfigDict,
             demo: bool) -> DatasetSplits:
        return chest.load(name, root, config, demo)

    def write_demo(root: pathlib.Path, config: ml_collections.ConfigDict) -> None:
        from jaxtl.data import chest_demo

        chest_demo.write_demo_dataset(name, root, num_patients=config.demo.num_patients,
                                      image_size=config.demo.image_size, seed=config.demo.seed)

    def resolve_files(root: pathlib.Path, splits: DatasetSplits) -> DatasetSplits:
        return chest.resolve_files(name, root, splits)

    return DatasetSpec(name=name, metrics=("mean_auroc", "mean_ap"), load=load,
                       write_demo=write_demo, rules=chest.rules(name), check=chest.check,
                       resolve_files=resolve_files)


register(_chest_spec("chexpert"))
register(_chest_spec("cxr14"))


# --- CoNSeP ----------------------------------------------------------------------------------


def _load_consep(root: pathlib.Path, config: ml_collections.ConfigDict,
                 demo: bool) -> DatasetSplits:
    # The one loader that reads images: records point into the patch cache, which is cut from
    # the tiles the first time (seconds for CoNSeP's 41 tiles) and only read afterwards.
    from jaxtl.data import consep, prepare

    section = config.consep
    return consep.load(root, task=config.data.task, patch_size=section.patch_size,
                       border=section.border, split=section.split,
                       test_tiles=section.test_tiles, val_tiles=section.val_tiles,
                       val_fraction=config.data.val_fraction,
                       test_fraction=config.data.test_fraction,
                       split_seed=config.data.split_seed, cache_dir=prepare.cache_dir(config),
                       demo=demo)


def _write_consep_demo(root: pathlib.Path, config: ml_collections.ConfigDict) -> None:
    from jaxtl.data import consep_demo

    consep_demo.write_demo_dataset(root, num_tiles=config.demo.num_patients,
                                   tile_size=config.demo.image_size, seed=config.demo.seed)


def _consep_checks(config: ml_collections.ConfigDict) -> list[str]:
    problems = []
    if config.data.channels not in (1, 3):
        problems.append(f"data.channels is {config.data.channels}; CoNSeP patches load as 3 "
                        f"(RGB) or 1 (grey) channels")
    if config.demo.image_size < 96:
        problems.append(f"demo.image_size is {config.demo.image_size}; CoNSeP demo tiles are "
                        f"at least 96 px")
    return problems


def _consep_decoder(config: ml_collections.ConfigDict) -> Decoder:
    from jaxtl.data.transforms import PatchArrayDecoder

    return PatchArrayDecoder(config.data.channels)


register(DatasetSpec(
    name="consep", metrics=("accuracy", "macro_f1"), load=_load_consep,
    write_demo=_write_consep_demo, units=("patches", "tiles"),
    rules={"data.task": choice("type7", "type4"),
           "consep.patch_size": number(4, 512, integer=True),
           "consep.border": choice("reflect", "zero"),
           "consep.split": choice("random", "tiles"),
           "consep.test_tiles": number(0, None, integer=True),
           "consep.val_tiles": number(1, None, integer=True)},
    check=_consep_checks, decoder=_consep_decoder))


# --- BigEarthNet-S2 --------------------------------------------------------------------------


def _load_bigearthnet(root: pathlib.Path, config: ml_collections.ConfigDict,
                      demo: bool) -> DatasetSplits:
    from jaxtl.data import bigearthnet, prepare

    return bigearthnet.load(root, task=config.data.task, split_dir=config.bigearthnet.split_dir,
                            cache_dir=prepare.cache_dir(config), demo=demo)


def _write_bigearthnet_demo(root: pathlib.Path, config: ml_collections.ConfigDict) -> None:
    from jaxtl.data import bigearthnet_demo

    bigearthnet_demo.write_demo_dataset(root, num_patches=config.demo.num_patients,
                                        seed=config.demo.seed)


def _band_selection(value: object) -> str | None:
    from jaxtl.data import bigearthnet

    if not isinstance(value, str):
        return f"is {value!r}; expected a band selection such as '10m20m'"
    try:
        bigearthnet.parse_bands(value)
    except ValueError as error:
        return f"is {error}"
    return None


def _bigearthnet_checks(config: ml_collections.ConfigDict) -> list[str]:
    from jaxtl.data import bigearthnet

    problems = []
    bands = bigearthnet.parse_bands(config.bigearthnet.bands)
    if config.data.channels != len(bands) or len(config.data.mean) != len(bands):
        mean, std = bigearthnet.published_statistics(bands)
        problems.append(
            f"data.channels, data.mean and data.std must match bigearthnet.bands="
            f"{config.bigearthnet.bands!r} ({len(bands)} bands: {', '.join(bands)}); with the "
            f"published statistics: --config.data.channels={len(bands)} "
            f"--config.data.mean='{mean}' --config.data.std='{std}' (or use "
            f"configs/bigearthnet.py:{config.bigearthnet.bands})")
    if config.bigearthnet.split_dir and not config.data.root:
        problems.append("bigearthnet.split_dir is set but data.root is empty: the demo data "
                        "bring their own lists; leave it empty or set data.root")
    if config.demo.image_size != bigearthnet.PATCH_SIDE:
        problems.append(f"demo.image_size is {config.demo.image_size}; BigEarthNet patches are "
                        f"{bigearthnet.PATCH_SIDE} px (set data.resolution to train smaller)")
    return problems


def _bigearthnet_decoder(config: ml_collections.ConfigDict) -> Decoder:
    from jaxtl.data import bigearthnet

    return bigearthnet.BandStackDecoder(bigearthnet.parse_bands(config.bigearthnet.bands),
                                        config.bigearthnet.interpolation)


register(DatasetSpec(
    name="bigearthnet", metrics=("mean_ap", "micro_f1", "macro_f1", "mean_auroc", "micro_ap"),
    load=_load_bigearthnet, write_demo=_write_bigearthnet_demo, units=("patches", "patches"),
    rules={"data.task": choice("labels19", "labels43"),
           "bigearthnet.bands": _band_selection,
           "bigearthnet.interpolation": choice("nearest", "bilinear", "bicubic"),
           "bigearthnet.split_dir": text},
    check=_bigearthnet_checks, decoder=_bigearthnet_decoder))


def names() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def get(name: str) -> DatasetSpec:
    if name not in _REGISTRY:
        raise KeyError(f"unknown dataset {name!r}; known datasets: {', '.join(names())}")
    return _REGISTRY[name]
