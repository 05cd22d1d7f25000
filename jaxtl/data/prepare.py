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


def load_splits(config: ml_collections.ConfigDict) -> DatasetSplits:
    """Reads the configured dataset (or the demo) and applies the per-class training cap."""
    spec = datasets.get(config.dataset)
    if config.data.root:
        splits = spec.load(pathlib.Path(config.data.root), config, False)
    else:
        splits = spec.load(ensure_demo_data(config), config, True)
    train = sampling.cap_per_class(splits.train, config.data.train_per_class,
                                   config.data.sample_seed, splits.class_names)
    for name in ("train", "val", "test"):
        records = train if name == "train" else splits.split(name)
        if not records and name != "test":
            raise DataError(f"the {name} split of {splits.name} is empty; check "
                            f"data.val_fraction / data.test_fraction and the dataset size")
    return dataclasses.replace(splits, train=train)

