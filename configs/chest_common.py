"""The study's defaults for chest X-rays, shared by configs/chexpert.py and configs/cxr14.py."""

from __future__ import annotations

import ml_collections

from configs import common
from jaxtl.data import chest

GREY_MEAN = (0.449,)  # the mean of ImageNet's RGB means and stds: grey images on that scale
GREY_STD = (0.226,)


def chest_config(dataset: str) -> ml_collections.ConfigDict:
    config = common.base_config()
    config.dataset = dataset
    config.data.task = "lung_opacity"
    config.data.channels = 1  # 3 replicates the grey image (set data.mean/std to 3 values)
    config.data.mean = GREY_MEAN
    config.data.std = GREY_STD
    config.data.resolution = 256
    config.data.batch_size = 64
    config.data.augment = "crop,rotate"  # no flip: the heart is on the left
    config.data.val_fraction = 0.1  # patient-wise 70/10/20 (chest.split=patient)
    config.data.test_fraction = 0.2
    chest.add_config(config)

    config.model.arch = "densenet121"
    config.optim.name = "adam"
    config.optim.lr = 1e-4
    config.optim.weight_decay = 0.0
    config.optim.schedule = "flat"
    config.train.epochs = 10
    config.eval.batch_size = 64
    config.eval.best_metric = "mean_auroc"

    config.demo.num_patients = 700
    config.demo.image_size = 96
    config.demo.epochs = 4
    return config
