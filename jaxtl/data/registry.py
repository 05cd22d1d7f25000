"""Which datasets jaxtl reads: each dataset package declares its `DatasetSpec`s.

A dataset package (`jaxtl/data/<package>/`, or any importable package of your own) exports
`DATASETS`, a tuple of specs. A spec is everything jaxtl needs to know about a dataset: its
config sections declared key by key (`settings`: default, rule, help), its defaults of common
keys (`defaults`), the checks across keys (`check`), how to
read its splits from the downloaded layout (`load`), how to write its demo data
(`write_demo`), how its images decode (`decoder`), which metrics may select the best
checkpoint (`metrics`), what its items and groups are called (`units`), and where findings are
known to be (`regions`, `region_findings`: jaxtl/data/regions.py).

`config.dataset` names a dataset: a built-in name (`names()`: the specs of the packages under
`jaxtl/data/`, found by listing them), or `<module>` / `<module>:<name>` for a dataset package
elsewhere on Python's path, e.g. `--config.dataset=mylab.knee` (its one spec) or
`mylab.datasets:knee`. Adding a built-in dataset is one package plus one config file.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import pathlib
import pkgutil
from collections.abc import Callable, Mapping
from typing import Any

import ml_collections

from jaxtl.core.errors import ConfigError
from jaxtl.core.settings import Section, allowing
from jaxtl.data.decoders import Decoder, ImageFileDecoder
from jaxtl.data.records import DatasetSplits
from jaxtl.data.regions import Regions

# Where a dataset can be: files under data.root (a folder or a table), or TFDS's data_dir.
LOCATION_KEYS = ("data.root", "data.tfds_dir")

Loader = Callable[[pathlib.Path, ml_collections.ConfigDict, bool], DatasetSplits]


def _no_checks(config: ml_collections.ConfigDict) -> list[str]:
    del config
    return []


def _files_checked_on_load(root: pathlib.Path, splits: DatasetSplits) -> DatasetSplits:
    del root
    return splits


def _no_region_files(root: pathlib.Path) -> Regions | None:
    del root
    return None


def _the_label_itself(label: str) -> tuple[str, ...]:
    return (label,)


def image_files(config: ml_collections.ConfigDict) -> Decoder:
    """The default decoder: image files through Pillow with `data.channels` channels."""
    return ImageFileDecoder(config.data.channels)


@dataclasses.dataclass(frozen=True)
class SegmentationData:
    """What a segmentation dataset (a `jaxtl.core.tasks.SegmentationTask`) adds to its spec: its
    records are whole tiles, trained on as random crops and scored whole."""

    # config -> a Grain RandomMap (Record, numpy Generator) -> {"image" (S, S, C) float32
    # normalised, "label" (S, S) int32 pixel classes, "valid"}: one random training crop
    crop: Callable[[ml_collections.ConfigDict], Callable[..., dict[str, Any]]]
    # config -> crops drawn from every training tile per epoch
    crops_per_tile: Callable[[ml_collections.ConfigDict], int]
    # (config, Record) -> (image (H, W, C) uint8, pixel classes (H, W), instances (H, W):
    # 0 background, one id per nucleus): a whole tile for evaluation
    tile: Callable[[ml_collections.ConfigDict, Any], tuple[Any, Any, Any]]


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    name: str
    metrics: tuple[str, ...]  # validation metrics that may select the best checkpoint
    load: Loader  # (root, config, demo) -> splits; must not open image files
    write_demo: Callable[[pathlib.Path, ml_collections.ConfigDict], None]
    # The dataset's own config sections (section -> key -> Setting), and the common keys it
    # declares anew (`data`: {"task": its tasks}): `jaxtl.config.base` builds the config and
    # its rules from them.
    settings: Mapping[str, Section]
    # Its defaults of common keys whose rule stays ('section.key' -> value: data.augment,
    # eval.best_metric, the demo's size, ...)
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    check: Callable[[ml_collections.ConfigDict], list[str]] = _no_checks
    # (root, splits after sampling) -> splits whose image files exist; a clear error otherwise.
    # Training calls it; `python -m jaxtl.commands.stats` does not (it reads label files only).
    resolve_files: Callable[[pathlib.Path, DatasetSplits], DatasetSplits] = _files_checked_on_load
    # config -> the decoder of this dataset's `Record.path`s (picklable, for Grain workers)
    decoder: Callable[[ml_collections.ConfigDict], Decoder] = image_files
    # what a Record and its grouping id (Record.patient) are called in reports such as stats
    units: tuple[str, str] = ("images", "patients")
    # root -> the regions the real download ships (e.g. ChestX-ray14's BBox_List_2017.csv), or
    # None; demo data are read from the demo sidecar whatever this is (loading.known_regions).
    regions: Callable[[pathlib.Path], Regions | None] = _no_region_files
    # a multilabel task's label -> the findings whose regions are that label's (multiclass
    # tasks: every finding of the image)
    region_findings: Callable[[str], tuple[str, ...]] = _the_label_itself
    # The config key naming where the dataset is (a folder, a table, a TFDS data_dir); when it
    # is empty the run uses the dataset's demo data. One of `LOCATION_KEYS`.
    location: str = "data.root"
    # Config keys ('section.key') that change the decoded pixels without changing the decoder's
    # description (e.g. CoNSeP's patch size): prepared data record them and refuse other values.
    pixel_settings: tuple[str, ...] = ()
    segmentation: SegmentationData | None = None  # a segmentation dataset; None: images

    def __post_init__(self) -> None:
        if self.location not in LOCATION_KEYS:
            raise ValueError(f"dataset {self.name!r}: location must be one of {LOCATION_KEYS}")


@functools.cache
def _built_in() -> dict[str, DatasetSpec]:
    import jaxtl.data

    found: dict[str, DatasetSpec] = {}
    for module in pkgutil.iter_modules(jaxtl.data.__path__):
        if module.ispkg:
            for spec in _specs_of(f"jaxtl.data.{module.name}"):
                if spec.name in found:
                    raise ValueError(f"dataset {spec.name!r} is declared twice")
                found[spec.name] = spec
    return found


def _specs_of(module_name: str) -> tuple[DatasetSpec, ...]:
    specs = getattr(importlib.import_module(module_name), "DATASETS", ())
    if not all(isinstance(spec, DatasetSpec) for spec in specs):
        raise TypeError(f"{module_name}.DATASETS must be a tuple of DatasetSpec")
    return tuple(specs)


def names() -> tuple[str, ...]:
    """The built-in datasets."""
    return tuple(sorted(_built_in()))


def get(name: str) -> DatasetSpec:
    """The spec `config.dataset` names (see the module doc); ConfigError if there is none."""
    if name in _built_in():
        return _built_in()[name]
    module_name, _, spec_name = name.partition(":")
    try:
        specs = _specs_of(module_name) if module_name else ()
    except ImportError as error:
        raise ConfigError(f"config.dataset is {name!r}: neither a built-in dataset "
                          f"({', '.join(names())}) nor an importable dataset package "
                          f"({error})") from None
    chosen = [s for s in specs if s.name == spec_name] if spec_name else list(specs)
    if len(chosen) != 1:
        declared = ", ".join(s.name for s in specs) or "none"
        raise ConfigError(f"config.dataset is {name!r}: the module {module_name!r} declares "
                          f"the datasets {declared} in DATASETS; name one as "
                          f"'{module_name}:<name>' or use a built-in dataset "
                          f"({', '.join(names())})")
    return chosen[0]


@allowing("a built-in dataset, or '<module>[:<name>]' of a dataset package")
def dataset_rule(value: object) -> str | None:
    """The config rule of `dataset`."""
    if not isinstance(value, str) or not value:
        return f"is {value!r}; expected a dataset name ({', '.join(names())})"
    try:
        get(value)
    except ConfigError as error:
        return str(error).removeprefix("config.dataset ")
    return None
