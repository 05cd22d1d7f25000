"""A dataset prepared by TensorFlow Datasets (ArrayRecord), read without TensorFlow.

    python -m jaxtl.main --config configs/tfds.py --workdir runs/dr-demo          # demo data
    python -m jaxtl.main --config configs/tfds.py:diabetic_retinopathy_detection/btgraham-300 \\
        --config.data.tfds_dir=~/tensorflow_datasets --workdir runs/dr
    python -m jaxtl.main --config configs/tfds.py:bigearthnet/all --config.data.tfds_dir=...
    python -m jaxtl.main --config configs/tfds.py:chexpert --config.data.tfds_dir=...

The argument names the TFDS dataset and config (default diabetic_retinopathy_detection/
btgraham-300) and picks the jaxtl dataset that reads it (tfds_retinopathy, tfds_bigearthnet,
tfds_chexpert: jaxtl/data/tfds/spec.py) with that dataset's defaults and sections; the
experiment's settings are those of the matching config file (eyepacs.py, bigearthnet.py,
chexpert.py). Needs `pip install -e '.[tfds]'`. Without data.tfds_dir, TFDS prepares a small
synthetic demo dataset.
"""

from __future__ import annotations

import pathlib

import ml_collections

from jaxtl.config.base import base_config
from jaxtl.config.files import load_module
from jaxtl.data.tfds.spec import dataset_for, select

DEFAULT = "diabetic_retinopathy_detection/btgraham-300"
SETTINGS_OF = {"tfds_retinopathy": "eyepacs.py", "tfds_bigearthnet": "bigearthnet.py",
               "tfds_chexpert": "chexpert.py"}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    name = arg or DEFAULT
    config = base_config(dataset_for(name))
    select(config, name)
    load_module(str(pathlib.Path(__file__).with_name(SETTINGS_OF[config.dataset]))).settings(
        config)
    return config
