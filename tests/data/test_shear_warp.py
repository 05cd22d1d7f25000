"""The gather-free warp TPUs train with (jaxtl.data.shear_warp) against bilinear sampling, a
linear ramp's exact values, and a per-line np.interp definition of a shear; rotations across
the whole circle (quarter turns and residual shears)."""

from __future__ import annotations

import functools
import math

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


def assert_ramp_warps_exactly(warps: tuple[tuple, ...], max_rotation: float) -> None:
    """Bilinear interpolation and each linear shear reproduce a linear function, so the warped
    ramp is the ramp at the warp's coordinates, wherever those lie inside the canvas."""
    rows, cols = np.meshgrid(np.arange(SIDE), np.arange(SIDE), indexing="ij")
    ramp = 30 + 2 * rows + cols  # whole numbers, within uint8
    canvases = np.repeat(ramp[None, ..., None], 3, -1).astype(np.uint8)
    for args in warps:
        w = warp(*args)
        out = sheared(canvases, w[None], max_rotation)[0, ..., 1]
        w = np.round(w / WARP_QUANTUM) * WARP_QUANTUM  # as both warps round it
        sample_rows = w[0, 0] * rows + w[0, 1] * cols + w[0, 2]
        sample_cols = w[1, 0] * rows + w[1, 1] * cols + w[1, 2]
        inside = ((sample_rows > 2) & (sample_rows < SIDE - 3) & (sample_cols > 2)
                  & (sample_cols < SIDE - 3))
        assert inside.sum() > SIDE * SIDE / 3
        np.testing.assert_allclose(out[inside], (30 + 2 * sample_rows + sample_cols)[inside],
                                   atol=2e-3)


def test_a_rotated_linear_ramp_is_exact():
    assert_ramp_warps_exactly(((5, 7, 38, True, 12.0), (2, 3, 44, False, -30.0),
                               (4, 1, 40, False, 30.0)), 30.0)


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


def test_rotations_across_the_circle_stay_close_to_bilinear_sampling():
    """Beyond 45 degrees a quarter turn (the transposed canvas, signs in the resampling
    matrices) and a residual rotation of at most 45 through the shears: within the tolerance
    of rotations the shears take alone, on both sides of every quarter and its 45 degree
    boundaries, mirrored or not."""
    canvases = smooth_canvases(8, seed=4)
    angles = np.array([-179.0, -135.0, -100.0, -60.0, -46.0, 45.5, 89.0, 91.0, 120.0, 135.0,
                       160.0, -30.0, 50.0, -89.5, 44.0, 179.5])
    for flip in (False, True):
        for chunk in np.split(angles, 2):
            warps = np.stack([warp(6, 6, 36, flip, float(angle)) for angle in chunk])
            difference = np.abs(sheared(canvases, warps, 180.0) - gathered(canvases, warps))
            inner = difference[:, 5:-5, 5:-5]
            assert inner.max() < 4.0 and inner.mean() < 0.6, (flip, chunk, inner.max(),
                                                              inner.mean())


def test_quarter_turns_are_the_bilinear_warps_pixels():
    """A whole quarter turn is a transpose and signs: every pixel as the gather's, edges too."""
    canvases = smooth_canvases(8, seed=5)
    warps = np.stack([warp(5, 7, 30, flip, angle) for flip in (False, True)
                      for angle in (90.0, 180.0, -90.0, -180.0)])
    np.testing.assert_allclose(sheared(canvases, warps, 180.0), gathered(canvases, warps),
                               atol=1e-3)


def test_a_linear_ramp_rotated_beyond_45_degrees_is_exact():
    assert_ramp_warps_exactly(((5, 7, 38, True, 120.0), (2, 3, 44, False, -150.0),
                               (4, 1, 40, False, 70.0)), 180.0)


def test_a_rotation_is_its_nearest_quarter_turn_and_a_residual_within_45_degrees():
    degrees = np.concatenate([np.linspace(-180.0, 180.0, 73), [44.9, 45.1, -134.9, 135.1]])
    radians = np.radians(degrees)
    cos_q, sin_q, cos_r, sin_r = (np.asarray(x) for x in jax.jit(shear_warp.quarter_turn)(
        jnp.asarray(np.cos(radians), jnp.float32), jnp.asarray(np.sin(radians), jnp.float32)))
    quarter = np.degrees(np.arctan2(sin_q, cos_q))
    residual = np.degrees(np.arctan2(sin_r, cos_r))
    assert np.all(np.abs(residual) <= 45.0 + 1e-4)
    np.testing.assert_allclose(quarter % 90.0, 0.0, atol=1e-6)
    turned = (quarter + residual - degrees + 180.0) % 360.0 - 180.0  # the same angle
    np.testing.assert_allclose(turned, 0.0, atol=1e-4)


def test_quarter_turns_need_a_square_canvas():
    with pytest.raises(ValueError, match="square canvas"):
        shear_warp.shear_warp(jnp.zeros((1, 8, 10, 3)), jnp.zeros((1, 2, 3)), max_degrees=90.0)


@pytest.mark.parametrize("axis, size, reach, start, length", [
    (2, (9, 11), 4, 0, None), (3, (9, 11), 4, 0, None),
    # many steps of whole shifts to select from; a cropped output
    (2, (50, 7), 36, 6, 30), (3, (7, 50), 36, -4, 45)])
def test_a_shear_moves_each_line_by_its_own_fraction(axis, size, reach, start, length):
    """`shear` against np.interp along each line: output[x] = planes[x + shift] for x in
    start .. start + length - 1, zero beyond the planes."""
    rng = np.random.default_rng(axis + reach)
    planes = rng.uniform(0, 1, (2, 1, *size)).astype(np.float32)
    lines = planes.shape[5 - axis]  # the other axis: columns when moving along rows
    shifts = rng.uniform(1 - reach, reach - 1, (2, lines)).astype(np.float32)
    shifts[0, :3] = [0.0, reach - 1.0, 1.0 - reach]  # whole shifts, the extremes
    out = np.asarray(shear_warp.shear(jnp.asarray(planes), jnp.asarray(shifts), axis=axis,
                                      reach=reach, start=start, length=length))
    size_along = planes.shape[axis]
    positions = np.arange(start, start + (size_along if length is None else length),
                          dtype=np.float64)
    expected_shape = list(planes.shape)
    expected_shape[axis] = len(positions)
    expected = np.zeros(expected_shape, np.float32)
    grid = np.arange(size_along, dtype=np.float64)
    for b in range(2):
        for line in range(lines):
            values = planes[b, 0, :, line] if axis == 2 else planes[b, 0, line, :]
            moved = np.interp(positions + shifts[b, line], grid, values, left=0.0, right=0.0)
            # np.interp holds the end values up to the last position; beyond it, the
            # padding's zero is reached linearly within one pixel
            for i, x in enumerate(positions + shifts[b, line]):
                if -1 < x < 0:
                    moved[i] = values[0] * (1.0 + x)
                elif size_along - 1 < x < size_along:
                    moved[i] = values[-1] * (1.0 - (x - (size_along - 1)))
            if axis == 2:
                expected[b, 0, :, line] = moved
            else:
                expected[b, 0, line, :] = moved
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_large_rotations_of_a_larger_canvas_stay_close_to_bilinear_sampling():
    """At 96 pixels a 45 degree residual shears by up to 50 pixels (a select among 11
    multiples of 11, then the sum of 12 copies): against the gather."""
    side = 96
    noise = np.random.default_rng(6).uniform(0, 255, (4, side, side, 3))
    smooth = ndimage.gaussian_filter(noise, (0, 6, 6, 0))
    canvases = np.round((smooth - smooth.min()) / (smooth.max() - smooth.min()) * 255
                        ).astype(np.uint8)
    warps = []
    # crops whose rotations stay on the canvas (its cut edge is where the two ways differ)
    for left, flip, angle in ((20, False, 44.0), (22, True, -135.0), (19, False, 100.0),
                              (21, True, 30.0)):
        matrix, offset = sampling_map(side, left, left, side - 2 * left, flip, angle)
        warps.append(np.concatenate([matrix, offset[:, None]], 1).astype(np.float32))
    warps = np.stack(warps)
    stages = shear_warp.shear_ranges(45.0, side, side)
    assert math.ceil(stages.sin * ((side - 1) / 2 + stages.rows_2)) + 1 == 50
    difference = np.abs(sheared(canvases, warps, 180.0) - gathered(canvases, warps))
    inner = difference[:, 8:-8, 8:-8]
    assert inner.max() < 4.0 and inner.mean() < 0.6, (inner.max(), inner.mean())


def test_rotations_beyond_the_bound_are_refused():
    with pytest.raises(ValueError, match="rotations up to 45.0 degrees"):
        shear_warp.shear_ranges(60.0, SIDE, SIDE)
