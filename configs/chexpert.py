"""CheXpert (Stanford, 224k chest radiographs): multi-label findings with uncertain labels.

    python -m jaxtl.main --config configs/chexpert.py --workdir runs/chexpert
    python -m jaxtl.main --config configs/chexpert.py --config.data.root=/data/CheXpert-v1.0-small \\
        --config.data.task=competition5 --config.chest.uncertain_per_label=Atelectasis=ones ...

The study's defaults for chest X-rays (configs/cxr14.py takes them too): 256 px, batch 64,
DenseNet121, Adam 1e-4. The `chest` section and the data defaults (task lung_opacity, grey
images, patient-wise 70/10/20 split, U-Ignore): jaxtl/data/chest/spec.py.
"""

from __future__ import annotations

import ml_collections

from jaxtl.config.base import base_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The chest X-ray study config; `arg` picks the dataset (cxr14 for configs/cxr14.py)."""
    config = base_config(arg or "chexpert")
    settings(config)
    return config


def settings(config: ml_collections.ConfigDict) -> None:
    """The study's settings (configs/cxr14.py and, for TFDS's chexpert, configs/tfds.py)."""
    config.data.resolution = 256
    config.data.batch_size = 64
    config.eval.batch_size = 64
    config.model.arch = "densenet121"
    config.optim.name = "adam"
    config.optim.lr = 1e-4
    config.optim.weight_decay = 0.0
    config.optim.schedule = "flat"
    config.train.epochs = 10
    config.demo.epochs = 4
