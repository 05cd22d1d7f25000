"""Sliding-window inference equals the whole-image result on a model whose output is known."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import softmax

from jaxtl.evaluators import sliding_window as inference


def pixelwise(variables, images):
    """A model whose logits at a pixel depend on that pixel alone: a 1x1 'convolution'."""
    return jnp.einsum("nhwc,ck->nhwk", images, variables["w"]) + variables["b"]


@pytest.mark.parametrize("shape,window,overlap,batch", [
    ((50, 37, 3), 16, 0.5, 4),  # windows overhang the grid: the last ones are shifted back
    ((32, 32, 3), 16, 0.0, 3),  # no overlap, a chunk padded with blank windows
    ((10, 21, 3), 16, 0.25, 8),  # a side shorter than the window: mirrored out, cut back
])
def test_sliding_windows_equal_the_whole_image(shape, window, overlap, batch):
    rng = np.random.default_rng(0)
    image = rng.normal(size=shape).astype(np.float32)
    variables = {"w": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32),
                 "b": jnp.asarray(rng.normal(size=4), jnp.float32)}
    predict = inference.make_tile_predictor(pixelwise, window=window, overlap=overlap,
                                            batch=batch)
    whole = softmax(np.einsum("hwc,ck->hwk", image.astype(np.float64),
                              np.asarray(variables["w"], np.float64))
                    + np.asarray(variables["b"], np.float64), axis=-1)
    got = predict(variables, image)
    assert got.shape == (*shape[:2], 4)
    np.testing.assert_allclose(got, whole, rtol=1e-5, atol=1e-6)


def test_windows_cover_every_pixel_and_blend_weights_are_positive():
    for length, window, overlap in [(100, 32, 0.5), (33, 32, 0.9), (32, 32, 0.5), (7, 32, 0.5)]:
        starts = inference.window_starts(length, window, overlap)
        covered = np.zeros(max(length, window), bool)
        for start in starts:
            covered[start:start + window] = True
        assert covered[:length].all() and starts[-1] + window >= length
    assert inference.window_starts(100, 32, 0.5) == [0, 16, 32, 48, 64, 68]
    weights = inference.blend_weights(5)
    assert weights.min() > 0 and weights[2, 2] == 1.0 and weights[0, 0] == pytest.approx(1 / 9)


def test_blending_weighs_window_centres_most():
    """Windows that disagree: where two overlap, the pixel takes the weighted mean."""

    def by_position(variables, images):
        del variables
        # Logits (0, mean pixel value): windows see different values, so they disagree.
        mean = images.mean(axis=(1, 2, 3), keepdims=True)
        return jnp.concatenate([jnp.zeros_like(images[..., :1]),
                                jnp.broadcast_to(mean, images[..., :1].shape)], axis=-1)

    image = np.zeros((8, 12, 1), np.float32)
    image[:, 8:] = 4.0
    predict = inference.make_tile_predictor(by_position, window=8, overlap=0.5, batch=2)
    got = predict({}, image)
    starts = inference.window_starts(12, 8, 0.5)  # [0, 4]
    assert starts == [0, 4]
    ramp = np.minimum(np.arange(1, 9), np.arange(8, 0, -1)).astype(float)
    p = [softmax([0.0, image[:, s:s + 8].mean()])[1] for s in starts]
    column = 6  # seen by both windows: column 6 of the first, column 2 of the second
    expected = (ramp[6] * p[0] + ramp[2] * p[1]) / (ramp[6] + ramp[2])
    np.testing.assert_allclose(got[:, column, 1], expected, rtol=1e-5)
    np.testing.assert_allclose(got[:, 1, 1], p[0], rtol=1e-5)
