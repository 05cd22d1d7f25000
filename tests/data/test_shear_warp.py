"""The gather-free warp TPUs train with (jaxtl.data.shear_warp) against bilinear sampling, a
linear ramp's exact values, and a per-line np.interp definition of a shear."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from jaxtl.data import shear_warp
from jaxtl.data.shear_warp import WARP_QUANTUM
from jaxtl.data.transforms import bilinear_warp, sampling_map

SIDE = 32


def warp(left: float, top: float, side: float, flip: bool, angle: float) -> np.ndarray:
    """The warp of a crop given in 48ths of the canvas's side."""
    scale = SIDE / 48
    matrix, offset = sampling_map(SIDE, left * scale, top * scale, side * scale, flip, angle)
    return np.concatenate([matrix, offset[:, None]], 1).astype(np.float32)


def smooth_canvases(count: int, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).uniform(0, 255, (count, SIDE, SIDE, 3))
    smooth = ndimage.gaussian_filter(noise, (0, 3, 3, 0))
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min()) * 255
    return np.round(smooth).astype(np.uint8)


def sheared(canvases, warps, max_degrees):
    return np.asarray(jax.jit(functools.partial(shear_warp.shear_warp,
                                                max_degrees=max_degrees))(canvases, warps))


def gathered(canvases, warps):
    return np.asarray(jax.jit(functools.partial(bilinear_warp, channel_planes=True))(
        canvases, warps))


def test_crops_and_flips_are_the_bilinear_warps_pixels():
    canvases = smooth_canvases(4)
    warps = np.stack([warp(0, 0, SIDE, False, 0.0), warp(5, 7, 30, False, 0.0),
                      warp(3.5, 1.25, 41.3, True, 0.0), warp(0, 0, SIDE, True, 0.0)])
    np.testing.assert_allclose(sheared(canvases, warps, 10.0), gathered(canvases, warps),
                               atol=1e-3)


def test_a_rotated_linear_ramp_is_exact():
    """Bilinear interpolation and each linear shear reproduce a linear function, so the warped
    ramp is the ramp at the warp's coordinates, wherever those lie inside the canvas."""
    rows, cols = np.meshgrid(np.arange(SIDE), np.arange(SIDE), indexing="ij")
    ramp = 30 + 2 * rows + cols  # whole numbers, within uint8
    canvases = np.repeat(ramp[None, ..., None], 3, -1).astype(np.uint8)
    for args in ((5, 7, 38, True, 12.0), (2, 3, 44, False, -30.0), (4, 1, 40, False, 30.0)):
        w = warp(*args)
        out = sheared(canvases, w[None], 30.0)[0, ..., 1]
        w = np.round(w / WARP_QUANTUM) * WARP_QUANTUM  # as both warps round it
        sample_rows = w[0, 0] * rows + w[0, 1] * cols + w[0, 2]
        sample_cols = w[1, 0] * rows + w[1, 1] * cols + w[1, 2]
        inside = ((sample_rows > 2) & (sample_rows < SIDE - 3) & (sample_cols > 2)
                  & (sample_cols < SIDE - 3))
        assert inside.sum() > SIDE * SIDE / 3
        np.testing.assert_allclose(out[inside], (30 + 2 * sample_rows + sample_cols)[inside],
                                   atol=2e-3)


def test_rotations_stay_close_to_bilinear_sampling_away_from_the_edges():
    """Three linear interpolations instead of one: on a smooth image they differ by a few
    levels of 255 inside; at the canvas's edge the shears interpolate where bilinear sampling
    cuts, so the border is left out."""
    canvases = smooth_canvases(3, seed=1)
    warps = np.stack([warp(5, 7, 40, False, 8.0), warp(3, 2, 44, True, -10.0),
                      warp(6, 6, 36, False, 30.0)])
    difference = np.abs(sheared(canvases, warps, 30.0) - gathered(canvases, warps))
    inner = difference[:, 5:-5, 5:-5]
    assert inner.max() < 4.0 and inner.mean() < 0.6, (inner.max(), inner.mean())


def test_in_bfloat16_a_warp_is_within_a_few_levels():
    """TPUs warp in bfloat16 (jaxtl.data.transforms.warp_batch): 8 bits of mantissa, rounded
    after each of the two matmuls and three shears (measured: at most 2.9 of 255 levels, 0.37
    on average); a bfloat16 model rounds its normalised input as coarsely."""
    canvases = smooth_canvases(2, seed=3)
    warps = np.stack([warp(3.5, 1.25, 41.3, True, 0.0), warp(5, 7, 40, False, 8.0)])
    bf16 = np.asarray(jax.jit(functools.partial(
        shear_warp.shear_warp, max_degrees=10.0, dtype=jnp.bfloat16))(canvases, warps))
    difference = np.abs(bf16 - sheared(canvases, warps, 10.0))
    assert difference.max() <= 4.0 and difference.mean() < 0.5, (difference.max(),
                                                                  difference.mean())


def test_a_larger_rotation_bound_changes_nothing_but_the_work():
    """The margin and shift ranges for `max_degrees` reach everything its warps sample: a
    larger bound (more padding, longer sums) gives the same pixels."""
    canvases = smooth_canvases(2, seed=2)
    warps = np.stack([warp(4, 5, 38, True, 20.0), warp(1, 2, 46, False, -20.0)])
    np.testing.assert_allclose(sheared(canvases, warps, 20.0), sheared(canvases, warps, 45.0),
                               atol=1e-3)


@pytest.mark.parametrize("axis", [2, 3])
def test_a_shear_moves_each_line_by_its_own_fraction(axis):
    """`shear` against np.interp along each line: output[x] = planes[x + shift], zero
    beyond the planes."""
    rng = np.random.default_rng(axis)
    planes = rng.uniform(0, 1, (2, 1, 9, 11)).astype(np.float32)
    lines = planes.shape[5 - axis]  # the other axis: columns when moving along rows
    shifts = rng.uniform(-3.0, 3.0, (2, lines)).astype(np.float32)
    out = np.asarray(shear_warp.shear(jnp.asarray(planes), jnp.asarray(shifts), axis=axis,
                                      reach=4))
    expected = np.zeros_like(planes)
    length = planes.shape[axis]
    positions = np.arange(length, dtype=np.float64)
    for b in range(2):
        for line in range(lines):
            values = planes[b, 0, :, line] if axis == 2 else planes[b, 0, line, :]
            moved = np.interp(positions + shifts[b, line], positions, values, left=0.0,
                              right=0.0)
            # np.interp holds the end values up to the last position; beyond it, the
            # padding's zero is reached linearly within one pixel
            for i, x in enumerate(positions + shifts[b, line]):
                if x < 0:
                    moved[i] = values[0] * max(0.0, 1.0 + x)
                elif x > length - 1:
                    moved[i] = values[-1] * max(0.0, 1.0 - (x - (length - 1)))
            if axis == 2:
                expected[b, 0, :, line] = moved
            else:
                expected[b, 0, line, :] = moved
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_rotations_beyond_the_bound_are_refused():
    with pytest.raises(ValueError, match="rotations up to 45.0 degrees"):
        shear_warp.shear_ranges(60.0, SIDE, SIDE)
