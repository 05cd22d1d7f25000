"""Shared fixtures: small datasets written in the real on-disk layouts, small configs."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from absl import flags
from PIL import Image

from configs import eyepacs as eyepacs_config

# Grain reads absl flags (as `python -m jaxtl.main` parses them); under pytest use the defaults.
flags.FLAGS.mark_as_parsed()


def write_eyepacs(root: pathlib.Path, labels: dict[str, int], size: tuple[int, int] = (40, 32),
                  seed: int = 0) -> pathlib.Path:
    """trainLabels.csv + train/<id>.jpeg with random pixels, as in the Kaggle download."""
    rng = np.random.default_rng(seed)
    (root / "train").mkdir(parents=True)
    lines = ["image,level"] + [f"{image},{level}" for image, level in labels.items()]
    (root / "trainLabels.csv").write_text("\n".join(lines) + "\n")
    for image in labels:
        pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "train" / f"{image}.jpeg", quality=90)
    return root


def eyepacs_labels(num_patients: int, seed: int = 0) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    labels = {}
    for patient in range(10, 10 + 3 * num_patients, 3):
        for eye in ("left", "right"):
            labels[f"{patient}_{eye}"] = int(rng.integers(0, 5))
    return labels


@pytest.fixture
def eyepacs_root(tmp_path: pathlib.Path) -> pathlib.Path:
    return write_eyepacs(tmp_path / "eyepacs", eyepacs_labels(30))


def tiny_config(tmp_path: pathlib.Path, **data_overrides):
    """The EyePACS config shrunk to run in seconds on a CPU (demo data unless root is given)."""
    config = eyepacs_config.get_config()
    config.data.cache_dir = str(tmp_path / "cache")
    config.data.num_workers = 0
    config.data.batch_size = 8
    config.eval.batch_size = 8
    config.demo.num_patients = 40
    config.demo.image_size = 48
    config.demo.arch = "resnet18"
    config.demo.resolution = 32
    config.demo.batch_size = 8
    config.demo.epochs = 2
    config.model.arch = "resnet18"
    config.data.resolution = 32
    config.train.log_every_steps = 1
    for key, value in data_overrides.items():
        config.data[key] = value
    return config


def tiny_chest_config(tmp_path: pathlib.Path, dataset: str = "chexpert"):
    """A chest config shrunk to run in seconds: 60 demo patients at 48 px, ResNet18 at 32 px."""
    from configs import chexpert as chexpert_config
    from configs import cxr14 as cxr14_config

    config = (chexpert_config if dataset == "chexpert" else cxr14_config).get_config()
    config.data.cache_dir = str(tmp_path / "cache")
    config.data.num_workers = 0
    config.data.batch_size = 8
    config.eval.batch_size = 8
    config.demo.bootstrap_samples = 20  # the demo settings replace eval.bootstrap_samples
    config.demo.num_patients = 60
    config.demo.image_size = 48
    config.demo.resolution = 32
    config.demo.batch_size = 8
    config.demo.epochs = 1
    config.train.log_every_steps = 5
    return config
