"""EyePACS (Kaggle Diabetic Retinopathy Detection): 5 grades, quadratic weighted kappa.

    python -m jaxtl.main --config configs/eyepacs.py --workdir runs/eyepacs
    python -m jaxtl.main --config configs/eyepacs.py --config.data.root=/data/eyepacs ...
"""

from __future__ import annotations

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    del arg
    config = common.base_config()
    config.dataset = "eyepacs"
    config.data.task = "grade"  # the 5 DR grades, one per image
    config.data.resolution = 512
    config.data.augment = "crop,flip,rotate"
    config.data.rotate_degrees = 180.0  # a fundus photograph has no preferred orientation
    config.data.batch_size = 16
    config.eval.batch_size = 32

    config.model.arch = "resnet50"
    config.optim.name = "sgd"
    config.optim.lr = 0.01
    config.optim.schedule = "gradual"
    config.train.epochs = 30
    config.eval.best_metric = "kappa"
    return config
