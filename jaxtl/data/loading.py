"""From a config to the records of every split: real data from where the dataset's location key
(`DatasetSpec.location`: data.root, or data.tfds_dir for TFDS datasets) points, else demo data;
with `data.prepared`, each record's pixels are read from the prepared shards instead
(`jaxtl.data.prepared`)."""

from __future__ import annotations

import dataclasses
import pathlib

import ml_collections

from jaxtl.data import prepared, registry, sampling
from jaxtl.data import demo_store as demo_data
from jaxtl.data.decoders import Decoder
from jaxtl.data.records import DataError, DatasetSplits
from jaxtl.data.regions import Regions


def location_key(dataset: str) -> str:
    """The config key ('section.key') that says where `dataset`'s data is."""
    return registry.get(dataset).location


def location(config: ml_collections.ConfigDict) -> str:
    """Where the configured dataset is; '' means the demo data."""
    section, key = location_key(config.dataset).split(".")
    return config[section][key]


def is_demo(config: ml_collections.ConfigDict) -> bool:
    """Whether the run uses the demo data: the dataset's location key is empty."""
    return not location(config)


def data_root(config: ml_collections.ConfigDict) -> pathlib.Path:
    """The dataset's location, or the demo dataset (written once) when it is empty."""
    if where := location(config):
        return pathlib.Path(where).expanduser()
    return demo_data.ensure_demo_data(config)


def sampled_splits(config: ml_collections.ConfigDict, root: pathlib.Path) -> DatasetSplits:
    """The splits after every filter and policy and the per-category training cap; reads
    label files only."""
    splits = registry.get(config.dataset).load(root, config, is_demo(config))
    train = sampling.sample_training_set(splits.train, splits.task,
                                         config.data.train_per_class, config.data.sample_seed)
    return dataclasses.replace(splits, train=train)


def every_record(config: ml_collections.ConfigDict, root: pathlib.Path) -> DatasetSplits:
    """Every record of every split (no training cap), image files checked: what a prepare
    stores."""
    spec = registry.get(config.dataset)
    return spec.resolve_files(root, spec.load(root, config, is_demo(config)))


def load_splits(config: ml_collections.ConfigDict) -> DatasetSplits:
    """Reads the configured dataset (or the demo), applies the training cap and checks that
    every image file the run uses exists (with `data.prepared`: that the prepared data fit the
    config and hold every image, whose paths then point into its shards)."""
    root = data_root(config)
    splits = sampled_splits(config, root)
    for name in ("train", "val"):
        if not splits.split(name):
            raise DataError(f"the {name} split of {splits.name} is empty; check "
                            f"data.val_fraction / data.test_fraction and the dataset size")
    if folder := prepared_folder(config):
        manifest = prepared.manifest_of(folder)
        prepared.check(manifest, config, registry.get(config.dataset).decoder(config))
        return prepared.attach(splits, manifest, folder)
    return registry.get(config.dataset).resolve_files(root, splits)


def prepared_folder(config: ml_collections.ConfigDict) -> str:
    """data.prepared ('' for the original files, also in run folders older than the key)."""
    return config.data.get("prepared", "")


def decoder(config: ml_collections.ConfigDict) -> Decoder:
    """How the run's `Record.path`s decode: the dataset's decoder, or the prepared shards'."""
    if folder := prepared_folder(config):
        return prepared.decoder(prepared.manifest_of(folder))
    return registry.get(config.dataset).decoder(config)


def known_regions(config: ml_collections.ConfigDict) -> Regions | None:
    """Where findings are known to be in the configured data: the real dataset's region files
    (`DatasetSpec.regions`) or the demo sidecar; None when neither is there."""
    root = data_root(config)
    return registry.get(config.dataset).regions(root) or demo_data.read_regions(root)
