"""Whole-tile prediction by sliding windows: overlapping windows, blended probabilities.

A tile of H x W pixels is covered by square windows of `window` px whose top-left corners are
0, s, 2s, ... and finally H - window (likewise W), with stride s = max(1, round(window x
(1 - overlap))); a tile smaller than a window is first mirrored out to it (and the result cut
back). Each window's class probabilities (softmax of the model's logits) are weighted by
`blend_weights`, a product of two ramps that is highest in the window's centre and positive up
to its edges, summed per pixel and divided by the summed weights. Pixels seen by one window get
that window's probabilities; where windows overlap, the centres of windows count most, where
predictions have the most context.

The whole computation for one tile size (windows cut, the model applied to `batch` windows at a
time with `jax.lax.map`, blended) is one jit-compiled function, compiled once per tile shape.
The variables are replicated; the windows are not split over devices.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

ApplyFn = Callable[[Any, jax.Array], jax.Array]  # (variables, images (N, w, w, C)) -> logits


def window_starts(length: int, window: int, overlap: float) -> list[int]:
    """Top (or left) corners of the windows covering `length` pixels."""
    if length <= window:
        return [0]
    stride = max(1, round(window * (1.0 - overlap)))
    starts = list(range(0, length - window, stride))
    return starts + [length - window]


def blend_weights(window: int) -> np.ndarray:
    """(window, window) float32 weights: the product of two ramps min(i + 1, window - i),
    normalised to a maximum of 1."""
    ramp = np.minimum(np.arange(1, window + 1), np.arange(window, 0, -1)).astype(np.float64)
    weights = np.outer(ramp, ramp)
    return (weights / weights.max()).astype(np.float32)


def make_tile_predictor(apply_fn: ApplyFn, *, window: int, overlap: float,
                        batch: int) -> Callable[[Any, np.ndarray], np.ndarray]:
    """`predict(variables, image (H, W, C) float32) -> probabilities (H, W, classes)`."""
    compiled: dict[tuple[int, ...], Callable] = {}

    def build(shape: tuple[int, ...]) -> Callable:
        height, width = max(shape[0], window), max(shape[1], window)
        corners = [(r, c) for r in window_starts(height, window, overlap)
                   for c in window_starts(width, window, overlap)]
        count = len(corners)
        chunks = math.ceil(count / batch)
        weights = jnp.asarray(blend_weights(window))

        def predict(variables: Any, image: jax.Array) -> jax.Array:
            pad = ((0, height - shape[0]), (0, width - shape[1]), (0, 0))
            padded = jnp.pad(image, pad, mode="symmetric") if any(p[1] for p in pad) else image
            windows = jnp.stack([jax.lax.dynamic_slice(padded, (r, c, 0),
                                                       (window, window, shape[2]))
                                 for r, c in corners])
            windows = jnp.pad(windows, ((0, chunks * batch - count), (0, 0), (0, 0), (0, 0)))
            probs = jax.lax.map(
                lambda x: jax.nn.softmax(apply_fn(variables, x).astype(jnp.float32), axis=-1),
                windows.reshape(chunks, batch, window, window, shape[2]))
            probs = probs.reshape(chunks * batch, window, window, -1)[:count]
            total = jnp.zeros((height, width, probs.shape[-1]), jnp.float32)
            norm = jnp.zeros((height, width), jnp.float32)
            for index, (r, c) in enumerate(corners):
                total = total.at[r:r + window, c:c + window].add(probs[index]
                                                                 * weights[..., None])
                norm = norm.at[r:r + window, c:c + window].add(weights)
            return (total / norm[..., None])[:shape[0], :shape[1]]

        return jax.jit(predict)

    def predictor(variables: Any, image: np.ndarray) -> np.ndarray:
        shape = tuple(np.shape(image))
        if shape not in compiled:
            compiled[shape] = build(shape)
        return np.asarray(jax.device_get(compiled[shape](variables, jnp.asarray(image,
                                                                                jnp.float32))))

    return predictor
