"""From a config to the records of every split: real data from data.root, else demo data."""

from __future__ import annotations

import dataclasses
import os
import pathlib

import ml_collections
from absl import logging

from jaxtl.data import datasets, sampling
from jaxtl.data.records import DataError, DatasetSplits

DEMO_FORMAT_VERSION = 1  # bump when a demo writer changes what it writes


def cache_dir(config: ml_collections.ConfigDict) -> pathlib.Path:
    if config.data.cache_dir:
        return pathlib.Path(config.data.cache_dir).expanduser()
    if env := os.environ.get("JAXTL_CACHE"):
        return pathlib.Path(env).expanduser()
    return pathlib.Path.home() / ".cache" / "jaxtl"


def demo_root(config: ml_collections.ConfigDict) -> pathlib.Path:
    demo = config.demo
    name = (f"{config.dataset}-v{DEMO_FORMAT_VERSION}-seed{demo.seed}-patients"
            f"{demo.num_patients}-size{demo.image_size}")
    return cache_dir(config) / "demo" / name


def ensure_demo_data(config: ml_collections.ConfigDict) -> pathlib.Path:
    """Writes the demo dataset once; later runs (and other processes) reuse it."""
    root = demo_root(config)
    if root.is_dir():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    logging.info("DEMO: writing synthetic %s data to %s (once)", config.dataset, root)
    try:
        datasets.get(config.dataset).write_demo(root, config)
    except OSError:
        # Another process on this machine renamed its finished copy into place first.
        if not root.is_dir():
            raise
    return root


def data_root(config: ml_collections.ConfigDict) -> pathlib.Path:
    """data.root, or the demo dataset (written once) when it is empty."""
    if config.data.root:
        return pathlib.Path(config.data.root)
    return ensure_demo_data(config)


def sampled_splits(config: ml_collections.ConfigDict, root: pathlib.Path) -> DatasetSplits:
    """The splits after every filter and policy and the per-category training cap; reads
    label files only."""
    splits = datasets.get(config.dataset).load(root, config, not config.data.root)
    train = sampling.sample_training_set(splits.train, splits.task,
                                         config.data.train_per_class, config.data.sample_seed)
    return dataclasses.replace(splits, train=train)


def load_splits(config: ml_collections.ConfigDict) -> DatasetSplits:
    """Reads the configured dataset (or the demo), applies the training cap and checks that
    every image file the run uses exists."""
    root = data_root(config)
    splits = sampled_splits(config, root)
    for name in ("train", "val"):
        if not splits.split(name):
            raise DataError(f"the {name} split of {splits.name} is empty; check "
                            f"data.val_fraction / data.test_fraction and the dataset size")
    return datasets.get(config.dataset).resolve_files(root, splits)

