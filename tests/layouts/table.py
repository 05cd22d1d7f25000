"""Your own data written by hand: image files of every kind Pillow reads, tables, class folders."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import numpy as np
from PIL import Image

# kind -> (file suffix, how the pixels are made and saved)
KINDS = ("rgb_png", "rgb_jpeg", "grey8_png", "grey16_png", "grey16_tiff")


def image_pixels(kind: str, seed: int, size: int = 20) -> np.ndarray:
    """The pixels an image file of `kind` holds (before JPEG's loss)."""
    rng = np.random.default_rng(seed)
    if kind.startswith("rgb"):
        return rng.integers(0, 256, (size, size + 4, 3), dtype=np.uint8)
    if kind == "grey8_png":
        return rng.integers(0, 256, (size, size + 4), dtype=np.uint8)
    # 16-bit radiograph-like values: well above 255, below 65535
    return rng.integers(1000, 60000, (size, size + 4), dtype=np.uint16)


def write_image(path: pathlib.Path, kind: str, seed: int) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = image_pixels(kind, seed)
    Image.fromarray(pixels).save(path, **({"quality": 95} if kind == "rgb_jpeg" else {}))
    return pixels


def suffix(kind: str) -> str:
    return {"rgb_png": ".png", "rgb_jpeg": ".jpg", "grey8_png": ".png", "grey16_png": ".png",
            "grey16_tiff": ".tif"}[kind]


def write_table(path: pathlib.Path, header: Sequence[str],
                rows: Sequence[Sequence[object]]) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(header)] + [",".join(str(cell) for cell in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path
