"""Small CoNSeP downloads written by hand: Train/ and Test/ tiles with their .mat labels."""

from __future__ import annotations

import pathlib

import numpy as np
import scipy.io
from PIL import Image


def write_tile(root: pathlib.Path, folder: str, name: str, image: np.ndarray,
               centroids_xy: list[tuple[float, float]], types: list[int],
               mode: str = "RGB") -> None:
    """One tile as in the download: Images/<name>.png and Labels/<name>.mat."""
    (root / folder / "Images").mkdir(parents=True, exist_ok=True)
    (root / folder / "Labels").mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).convert(mode).save(root / folder / "Images" / f"{name}.png")
    inst_map = np.zeros(image.shape[:2], np.int32)
    for i, (x, y) in enumerate(centroids_xy, start=1):
        if 0 <= round(y) < inst_map.shape[0] and 0 <= round(x) < inst_map.shape[1]:
            inst_map[int(round(y)), int(round(x))] = i
    scipy.io.savemat(root / folder / "Labels" / f"{name}.mat", {
        "inst_map": inst_map, "type_map": np.zeros_like(inst_map),
        "inst_type": np.asarray(types, np.float64).reshape(-1, 1),
        "inst_centroid": np.asarray(centroids_xy, np.float64).reshape(-1, 2)})


def random_image(seed: int, size: tuple[int, int] = (24, 30)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
