"""The segmentation overlay PNG: the three panels as drawn, titled, with a colour key."""

from __future__ import annotations

import numpy as np

from jaxtl.evaluators.segmentation import PALETTE, overlay

NAMES = ["background", "other", "inflammatory", "epithelial", "spindle-shaped"]


def test_overlay_panels_are_titled_and_every_foreground_class_is_keyed():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    true = np.zeros((96, 96), np.int64)
    true[10:40, 10:40] = 1
    predicted = np.zeros((96, 96), np.int64)
    predicted[50:80, 50:80] = 3
    drawn = overlay(image, true, predicted, NAMES)
    assert drawn.dtype == np.uint8 and drawn.shape[1] == 3 * 96
    # the panels sit below the title band: find the tile's first row
    top = next(y for y in range(drawn.shape[0]) if np.array_equal(drawn[y, :96], image[0]))
    assert top > 0
    np.testing.assert_array_equal(drawn[top:top + 96, :96], image)
    expected_true = (image * (1 - 0.55) + PALETTE[1] * 0.55).astype(np.uint8)[10:40, 10:40]
    np.testing.assert_array_equal(drawn[top + 10:top + 40, 96 + 10:96 + 40], expected_true)
    np.testing.assert_array_equal(drawn[top + 10:top + 40, 192 + 10:192 + 40],
                                  image[10:40, 10:40])  # nothing predicted there
    titles, key = drawn[:top], drawn[top + 96:]
    for column in range(3):  # each panel has a title drawn above it
        assert (titles[:, column * 96:(column + 1) * 96] < 128).any()
    assert key.shape[0] > 0
    for index in range(1, len(NAMES)):  # every foreground class's colour is in the key
        assert (key == PALETTE[index].astype(np.uint8)).all(axis=-1).any(), NAMES[index]
    assert not (titles == PALETTE[1].astype(np.uint8)).all(axis=-1).any()
