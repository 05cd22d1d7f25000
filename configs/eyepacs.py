"""EyePACS (Kaggle Diabetic Retinopathy Detection): 5 grades, quadratic weighted kappa.

    python -m jaxtl.main --config configs/eyepacs.py --workdir runs/eyepacs
    python -m jaxtl.main --config configs/eyepacs.py --config.data.root=/data/eyepacs ...

The dataset's own keys and defaults (task, augmentation, `eyepacs.*`): jaxtl/data/eyepacs/spec.py.
"""

from __future__ import annotations

import ml_collections

from jaxtl.config.base import base_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    del arg
    config = base_config("eyepacs")
    settings(config)
    return config


def settings(config: ml_collections.ConfigDict) -> None:
    """The experiment's settings (configs/tfds.py takes them for TFDS's retinopathy data)."""
    config.data.resolution = 512
    config.data.batch_size = 16
    config.eval.batch_size = 32
    config.model.arch = "resnet50"
    config.optim.name = "sgd"
    config.optim.lr = 0.01
    config.optim.schedule = "gradual"
    config.train.epochs = 30
