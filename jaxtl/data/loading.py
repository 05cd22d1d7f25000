"""From a config to the records of every split: real data from where the dataset's location key
(`DatasetSpec.location`: data.root, or data.tfds_dir for TFDS datasets) points, else demo data;
with `data.prepared`, each record's pixels are read from the prepared shards instead
(`jaxtl.data.prepared`).

Each function takes the dataset's spec as a run resolved it once
(`jaxtl.config.validation.dataset_spec`); without one it looks `config.dataset` up itself.
"""

from __future__ import annotations

import dataclasses
import pathlib

import ml_collections

from jaxtl.data import demo_store as demo_data
from jaxtl.data import prepared, registry, sampling
from jaxtl.data.decoders import Decoder
from jaxtl.data.records import DataError, DatasetSplits
from jaxtl.data.regions import Regions
from jaxtl.data.registry import DatasetSpec


def spec_of(config: ml_collections.ConfigDict, spec: DatasetSpec | None = None) -> DatasetSpec:
    """`spec` when given, else the spec `config.dataset` names."""
    return spec or registry.get(config.dataset)


def location_key(dataset: str) -> str:
    """The config key ('section.key') that says where `dataset`'s data is."""
    return registry.get(dataset).location


def location(config: ml_collections.ConfigDict, spec: DatasetSpec | None = None) -> str:
    """Where the configured dataset is; '' means the demo data."""
    section, key = spec_of(config, spec).location.split(".")
    return config[section][key]


def is_demo(config: ml_collections.ConfigDict, spec: DatasetSpec | None = None) -> bool:
    """Whether the run uses the demo data: the dataset's location key is empty."""
    return not location(config, spec)


def data_root(config: ml_collections.ConfigDict,
              spec: DatasetSpec | None = None) -> pathlib.Path:
    """The dataset's location, or the demo dataset (written once) when it is empty."""
    spec = spec_of(config, spec)
    if where := location(config, spec):
        return pathlib.Path(where).expanduser()
    return demo_data.ensure_demo_data(config, spec)


def sampled_splits(config: ml_collections.ConfigDict, root: pathlib.Path,
                   spec: DatasetSpec | None = None) -> DatasetSplits:
    """The splits after every filter and policy and the per-category training cap; reads
    label files only."""
    spec = spec_of(config, spec)
    splits = spec.load(root, config, is_demo(config, spec))
    train = sampling.sample_training_set(splits.train, splits.task,
                                         config.data.train_per_class, config.data.sample_seed)
    return dataclasses.replace(splits, train=train)


def every_record(config: ml_collections.ConfigDict, root: pathlib.Path,
                 spec: DatasetSpec | None = None) -> DatasetSplits:
    """Every record of every split (no training cap), image files checked: what a prepare
    stores."""
    spec = spec_of(config, spec)
    return spec.resolve_files(root, spec.load(root, config, is_demo(config, spec)))


def load_splits(config: ml_collections.ConfigDict,
                spec: DatasetSpec | None = None) -> DatasetSplits:
    """Reads the configured dataset (or the demo), applies the training cap and checks that
    every image file the run uses exists (with `data.prepared`: that the prepared data fit the
    config and hold every image, whose paths then point into its shards)."""
    spec = spec_of(config, spec)
    root = data_root(config, spec)
    splits = sampled_splits(config, root, spec)
    for name in ("train", "val"):
        if not splits.split(name):
            raise DataError(f"the {name} split of {splits.name} is empty; check "
                            f"data.val_fraction / data.test_fraction and the dataset size")
    if folder := prepared_folder(config):
        manifest = prepared.manifest_of(folder)
        prepared.check(manifest, config, spec.decoder(config))
        return prepared.attach(splits, manifest, folder)
    return spec.resolve_files(root, splits)


def prepared_folder(config: ml_collections.ConfigDict) -> str:
    """data.prepared ('' for the original files, also in run folders older than the key)."""
    return config.data.get("prepared", "")


def decoder(config: ml_collections.ConfigDict, spec: DatasetSpec | None = None) -> Decoder:
    """How the run's `Record.path`s decode: the dataset's decoder, or the prepared shards'."""
    if folder := prepared_folder(config):
        return prepared.decoder(prepared.manifest_of(folder))
    return spec_of(config, spec).decoder(config)


def known_regions(config: ml_collections.ConfigDict,
                  spec: DatasetSpec | None = None) -> Regions | None:
    """Where findings are known to be in the configured data: the real dataset's region files
    (`DatasetSpec.regions`) or the demo sidecar; None when neither is there."""
    spec = spec_of(config, spec)
    root = data_root(config, spec)
    return spec.regions(root) or demo_data.read_regions(root)
