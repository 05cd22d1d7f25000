"""EyePACS in jaxtl: its config settings and checks, decoder and spec."""

from __future__ import annotations

import pathlib

import ml_collections

from jaxtl.core.settings import Setting, choice
from jaxtl.data.decoders import Decoder, ImageFileDecoder
from jaxtl.data.eyepacs import demo, reader
from jaxtl.data.eyepacs.graham import GrahamPreprocess
from jaxtl.data.records import DatasetSplits
from jaxtl.data.registry import DatasetSpec

PREPROCESSING = ("none", "graham")


SETTINGS = {
    "data": {"task": Setting("grade", choice("grade"), "the 5 DR grades, one per image")},
    "eyepacs": {
        "preprocess": Setting("none", choice(*PREPROCESSING),
                              "'graham': the winning Kaggle entry's preprocessing (eye radius "
                              "scaled to half of data.resolution, 4 * image - 4 * Gaussian "
                              "blur + 128, grey outside 0.9 of the radius)"),
        "test_set": Setting("auto", choice(*reader.TEST_SETS),
                            "the test split: 'holdout' (test_fraction of the trainLabels.csv "
                            "patients), 'kaggle' (the Kaggle test set: retinopathy_solution.csv "
                            "+ test/, also scored per Usage Public/Private), or 'auto' (kaggle "
                            "when data.root holds both files, else holdout)"),
    },
}
DEFAULTS = {"data.augment": "crop,flip,rotate",
            "data.rotate_degrees": 180.0,  # a fundus photograph has no preferred orientation
            "eval.best_metric": "kappa"}


def load(root: pathlib.Path, config: ml_collections.ConfigDict, demo: bool) -> DatasetSplits:
    return reader.load(root, val_fraction=config.data.val_fraction,
                       test_fraction=config.data.test_fraction,
                       split_seed=config.data.split_seed, demo=demo,
                       test_set=config.eyepacs.test_set)


def write_demo(root: pathlib.Path, config: ml_collections.ConfigDict) -> None:
    demo.write_demo_dataset(root, num_patients=config.demo.num_patients,
                            image_size=config.demo.image_size, seed=config.demo.seed)


def check(config: ml_collections.ConfigDict) -> list[str]:
    return ([] if config.data.channels in (1, 3) else
            [f"data.channels is {config.data.channels}; EyePACS photographs load as 3 (RGB) "
             f"or 1 (grey) channels"])


def decoder(config: ml_collections.ConfigDict) -> Decoder:
    graham = config.eyepacs.preprocess == "graham"
    return ImageFileDecoder(config.data.channels, GrahamPreprocess() if graham else None)


SPEC = DatasetSpec(name=reader.NAME, metrics=("kappa", "accuracy", "macro_f1"), load=load,
                   write_demo=write_demo, settings=SETTINGS, defaults=DEFAULTS,
                   check=check, decoder=decoder)
