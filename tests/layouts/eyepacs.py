"""Small EyePACS downloads written by hand: trainLabels.csv and train/<image>.jpeg."""

from __future__ import annotations

import pathlib

import numpy as np
from PIL import Image


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
