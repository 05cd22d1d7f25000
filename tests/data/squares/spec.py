"""The squares dataset in jaxtl: its config settings and DatasetSpec."""

from __future__ import annotations

import pathlib

import ml_collections

from jaxtl.core.settings import Setting, choice
from jaxtl.data.records import DatasetSplits
from jaxtl.data.registry import DatasetSpec
from squares import demo, reader

SETTINGS = {
    "data": {"task": Setting("shape", choice("shape"), "square or circle, one per image")},
    # the dataset's own section: one key, checked by its rule
    "squares": {"outline": Setting("filled", choice("filled"), "how the shapes are drawn")},
}
DEFAULTS = {"data.augment": "flip", "eval.best_metric": "accuracy",
            "demo.num_patients": 60, "demo.image_size": 32}


def load(root: pathlib.Path, config: ml_collections.ConfigDict, demo_data: bool) -> DatasetSplits:
    return reader.load(root, val_fraction=config.data.val_fraction,
                       test_fraction=config.data.test_fraction,
                       split_seed=config.data.split_seed, demo=demo_data)


def write_demo(root: pathlib.Path, config: ml_collections.ConfigDict) -> None:
    demo.write_demo_dataset(root, num_patients=config.demo.num_patients,
                            image_size=config.demo.image_size, seed=config.demo.seed)


SPEC = DatasetSpec(name=reader.NAME, metrics=("accuracy", "macro_f1", "kappa"), load=load,
                   write_demo=write_demo, settings=SETTINGS, defaults=DEFAULTS)
