"""The training warp without gathers: crop, flip and scale as two matmuls per channel plane, the
rotation as three shears, each a sum of statically shifted copies (what XLA:TPU runs fastest).

`jaxtl.data.transforms.warp_batch` samples canvases through their warps (crop, flip and
rotation; see `sampling_map`). Sampling four neighbours per pixel is a gather, and XLA:TPU's cost
model charges a gather per index, so on a TPU the warp costs more memory traffic than the rest
of a ResNet-50 step (benchmarks/README.md). Here the same warp is computed without a gather:

  * A warp's matrix is `k F Rot(a)`: a scale `k` (the crop's side over the output's), a mirror
    `F` of the columns, a rotation by `a` (recovered from the matrix, so the batch format stays
    the same). About the output's centre `c0`, output(p) = J(Rot(p - c0) + c0), where
    J(q) = canvas(k F q + t') is axis-aligned: J's rows and columns are each a bilinear
    resampling of the canvas's, two matmuls per channel plane (`resampling_matrix`), on a grid
    padded by `margin` so that the rotation finds J wherever it looks.
  * Rot(a) = U L U with U = [[1, -tan(a/2)], [0, 1]] and L = [[1, 0], [sin a, 1]] (Paeth's
    three shears). Each shear moves every column (or row) by its own fractional amount with
    linear interpolation: a sum over the integer shifts d in [-D, D] of the statically shifted
    plane weighted by max(0, 1 - |d - shift|) (`shear`), which XLA fuses into one pass.

Against bilinear sampling of the rotated canvas (the gather, `bilinear_warp`), crops and flips
give the same pixels (a rotation of 0 is three identity shears), and rotations interpolate three
times: a linear ramp comes out exactly (tests/data/test_shear_warp.py), edges are a little
softer, and the border where the canvas ends is interpolated, not cut. The shifts' range grows
with the largest rotation (static: `max_degrees`), so rotations above `MAX_DEGREES` keep the
gather.
"""

from __future__ import annotations

import math
from typing import Any

# A warp's coefficients are rounded to this grid (jaxtl.data.transforms._warp_coordinates and
# here), so that both ways of warping sample from exactly the same coordinates.
WARP_QUANTUM = 2.0**-12
MAX_DEGREES = 45.0  # beyond this, the shears' ranges (tan(a/2), sin a) make the sums too long


def shear_ranges(max_degrees: float, height: int, width: int) -> tuple[int, int, int]:
    """(margin, D of the U shears, D of the L shear) for rotations up to `max_degrees` of a
    (height, width) output: J's grid is padded by `margin` on every side, and each shear sums
    the shifts -D .. D (whole pixels, one more than the largest fractional shift)."""
    if not 0.0 <= max_degrees <= MAX_DEGREES:
        raise ValueError(f"rotations up to {MAX_DEGREES} degrees, not {max_degrees}")
    angle = math.radians(max_degrees)
    tau, sigma = math.tan(angle / 2.0), math.sin(angle)
    half = (max(height, width) - 1) / 2.0
    # How far each stage reads beyond the output, working back from the last shear:
    rows_2 = half * (1.0 + tau)  # the last U shear reads J2's rows this far from the centre
    cols_1 = half + sigma * rows_2  # the L shear reads J1's columns
    rows_0 = rows_2 + tau * cols_1  # the first U shear reads J0's rows
    margin = math.ceil(max(rows_0, cols_1) - half) + 1
    reach = half + margin
    return margin, math.ceil(tau * reach) + 1, math.ceil(sigma * reach) + 1


def decompose(warp: Any) -> tuple[Any, Any, Any, Any, Any]:
    """(k, column sign, cos a, sin a, offset) of a (2, 3) warp whose matrix is k F Rot(a) in
    (row, col) index coordinates, Rot(a) = [[cos, -sin], [sin, cos]], F = diag(1, sign)."""
    import jax.numpy as jnp

    matrix, offset = warp[:, :2], warp[:, 2]
    det = matrix[0, 0] * matrix[1, 1] - matrix[0, 1] * matrix[1, 0]
    sign = jnp.where(det < 0, -1.0, 1.0)
    k = jnp.sqrt(jnp.abs(det))
    return k, sign, matrix[0, 0] / k, -matrix[0, 1] / k, offset


def resampling_matrix(coordinates: Any, length: int) -> Any:
    """(N, length): bilinear weights of an axis's `length` canvas pixels for each of the N
    sampling `coordinates` (index units); the canvas's edge pixels extend to its outer edges,
    beyond them a coordinate samples nothing (a row of zeros), as `warp_on_host`."""
    import jax.numpy as jnp

    inside = (coordinates >= -0.5) & (coordinates <= length - 0.5)
    clipped = jnp.clip(coordinates, 0.0, length - 1.0)
    pixels = jnp.arange(length, dtype=jnp.float32)
    weights = jnp.maximum(0.0, 1.0 - jnp.abs(clipped[:, None] - pixels[None, :]))
    return weights * inside[:, None]


def shear(planes: Any, shifts: Any, *, axis: int, reach: int) -> Any:
    """(B, C, H, W) planes resampled along `axis` (2: rows, 3: columns): line i of the other
    axis moves by `shifts[:, i]` (fractional), output[x] = planes[x + shift], linearly
    interpolated, zero beyond the planes."""
    import jax
    import jax.numpy as jnp

    padding = [(0, 0)] * 4
    padding[axis] = (reach, reach)
    padded = jnp.pad(planes, padding)
    length = planes.shape[axis]
    # per line of the other axis: (B, 1, 1, L) when moving along rows, (B, 1, L, 1) along columns
    line_shape = (shifts.shape[0], 1, 1, -1) if axis == 2 else (shifts.shape[0], 1, -1, 1)
    out = jnp.zeros_like(planes)
    for d in range(-reach, reach + 1):
        weight = jnp.maximum(0.0, 1.0 - jnp.abs(d - shifts)).reshape(line_shape)
        weight = weight.astype(planes.dtype)
        out = out + weight * jax.lax.slice_in_dim(padded, reach + d, reach + d + length,
                                                  axis=axis)
    return out


def shear_warp(images: Any, warps: Any, *, max_degrees: float, dtype: Any = None) -> Any:
    """(B, H, W, C) canvases sampled through their (B, 2, 3) warps, rotations up to
    `max_degrees` -> float32 (B, H, W, C); see the module doc. `dtype`: what the matmuls and
    shears compute in (None: float32; TPUs: bfloat16, whose 8 bits of mantissa hold the 256
    levels of 8-bit pixels, and which a TPU's float32 matmul multiplies in by default)."""
    import jax
    import jax.numpy as jnp

    height, width = images.shape[1:3]
    margin, reach_u, reach_l = shear_ranges(max_degrees, height, width)
    centre = jnp.array([(height - 1) / 2.0, (width - 1) / 2.0], jnp.float32)
    rows = jnp.arange(-margin, height + margin, dtype=jnp.float32)  # J's padded grid
    cols = jnp.arange(-margin, width + margin, dtype=jnp.float32)

    def axis_aligned(warp: Any) -> tuple[Any, Any, Any, Any]:
        k, sign, cos, sin, offset = decompose(warp)
        flip = jnp.array([1.0, 1.0]).at[1].set(sign)
        rotated_centre = jnp.array([cos * centre[0] - sin * centre[1],
                                    sin * centre[0] + cos * centre[1]])
        start = offset + k * flip * (rotated_centre - centre)  # t' of J(q) = canvas(k F q + t')
        row_weights = resampling_matrix(k * rows + start[0], height)
        col_weights = resampling_matrix(sign * k * cols + start[1], width)
        return row_weights, col_weights, cos, sin

    # on the grid the gather rounds warps to, so crops agree exactly
    warps = jnp.round(warps.astype(jnp.float32) / WARP_QUANTUM) * WARP_QUANTUM
    row_weights, col_weights, cos, sin = jax.vmap(axis_aligned)(warps)
    dtype = jnp.float32 if dtype is None else dtype
    planes = jnp.moveaxis(images, -1, 1).astype(dtype)  # (B, C, H, W)
    grid = jnp.einsum("bchw,bjw->bchj", planes, col_weights.astype(dtype))
    grid = jnp.einsum("bih,bchj->bcij", row_weights.astype(dtype), grid)  # J, padded grid
    # Rot(a) = U L U, applied last to first: output(d) = J(U L U d) about the centre.
    tan_half = jnp.where(jnp.abs(cos + 1.0) > 1e-6, sin / (1.0 + cos), 0.0)[:, None]
    centred_rows, centred_cols = rows - centre[0], cols - centre[1]
    grid = shear(grid, -tan_half * centred_cols, axis=2, reach=reach_u)  # J1(y) = J(U y)
    grid = shear(grid, sin[:, None] * centred_rows, axis=3, reach=reach_l)  # J2(z) = J1(L z)
    grid = shear(grid, -tan_half * centred_cols, axis=2, reach=reach_u)  # J3(w) = J2(U w)
    out = grid[:, :, margin:margin + height, margin:margin + width]
    return jnp.moveaxis(out, 1, -1).astype(jnp.float32)
