"""The preprocessing of the winning Kaggle Diabetic Retinopathy entry (Ben Graham, 2015).

Graham's competition report: scale each photograph to a fixed eye radius, subtract the local
average colour (a Gaussian blur with sigma = radius / 30) as `4 * image - 4 * blur + 128`, and
set everything outside 90 % of the radius to the mid-grey 128, which removes lighting and
camera differences and the boundary effect. The radius is estimated as he did, from the middle
row: half the number of pixels whose channel sum exceeds a tenth of the row's mean.

Here the target radius is half the training resolution, and the result is the square of side
2 * radius centred on the image centre (grey where the photograph does not reach), so the usual
centre crop of `ImageTransform` sees the whole eye and random crops zoom into it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image, ImageFilter

GREY = 128
MASK_FRACTION = 0.9
BLUR_FRACTION = 1 / 30


def estimate_radius(pixels: np.ndarray) -> float:
    """Eye radius in pixels from the middle row (Graham's rule); the half width if the row is
    dark throughout (no eye found)."""
    row = pixels[pixels.shape[0] // 2].reshape(pixels.shape[1], -1).astype(np.float64).sum(1)
    radius = float((row > row.mean() / 10).sum()) / 2.0
    return radius if radius >= 0.1 * pixels.shape[1] else pixels.shape[1] / 2.0


@dataclasses.dataclass(frozen=True)
class GrahamPreprocess:
    """Radius scaling, Gaussian-blur subtraction and a circular mask (see the module doc)."""

    def __call__(self, image: Image.Image, resolution: int) -> Image.Image:
        radius = resolution / 2.0
        scale = radius / estimate_radius(np.asarray(image))
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR)
        blur = image.filter(ImageFilter.GaussianBlur(radius * BLUR_FRACTION))
        sharp = (4 * np.asarray(image, np.int16) - 4 * np.asarray(blur, np.int16) + GREY)
        sharp = np.clip(sharp, 0, 255).astype(np.uint8)
        canvas = np.full((resolution, resolution, *sharp.shape[2:]), GREY, np.uint8)
        # Place the scaled photograph's centre on the canvas centre, cutting what overhangs.
        top, left = (resolution - sharp.shape[0]) // 2, (resolution - sharp.shape[1]) // 2
        src_top, src_left = max(0, -top), max(0, -left)
        dst_top, dst_left = max(0, top), max(0, left)
        height = min(sharp.shape[0] - src_top, resolution - dst_top)
        width = min(sharp.shape[1] - src_left, resolution - dst_left)
        canvas[dst_top:dst_top + height, dst_left:dst_left + width] = \
            sharp[src_top:src_top + height, src_left:src_left + width]
        rows, cols = np.ogrid[:resolution, :resolution]
        centre = (resolution - 1) / 2.0
        outside = (rows - centre) ** 2 + (cols - centre) ** 2 > (MASK_FRACTION * radius) ** 2
        canvas[outside] = GREY
        return Image.fromarray(canvas)
