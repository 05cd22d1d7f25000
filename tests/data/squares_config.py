"""The config file of the squares dataset package (tests/data/squares/): small_cnn at 32 px."""

from __future__ import annotations

import ml_collections

from jaxtl.config.base import base_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    del arg
    config = base_config("squares")
    config.data.resolution = 32
    config.model.arch = config.demo.arch = "small_cnn"
    config.demo.resolution = 32
    config.demo.batch_size = 16
    config.demo.epochs = 3
    config.demo.bootstrap_samples = 20
    config.data.batch_size = config.eval.batch_size = 16
    config.optim.name = "adam"
    config.optim.lr = 3e-3
    return config
