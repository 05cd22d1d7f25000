"""Overlay images of the explanation gallery."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from jaxtl.data.regions import Box
from jaxtl.explain import gallery


def test_overlay_draws_a_box_cut_to_a_sliver_at_the_edge() -> None:
    """A lesion box clipped to under a pixel at the image edge (as the demo writers can record)
    is drawn as a line in the box colour instead of failing the whole explanation."""
    pixels = np.zeros((16, 16, 3), np.uint8)
    attribution = np.zeros((16, 16), np.float32)
    sliver = Box(15.9, 4.0, 0.05, 6.0)
    png = gallery.overlay_png(pixels, attribution, [sliver], None)
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    scale = gallery.MIN_SIDE // 16
    right = image[:, 16 * scale + scale:]
    column = right[:, int(15.9 * scale)]
    assert (column == gallery.BOX_COLOUR).all(axis=1).sum() >= 6 * scale - 1
