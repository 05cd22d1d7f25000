"""The training warp without gathers: crop, flip, scale and quarter turns as two matmuls per
channel plane, the rest of the rotation as three shears, each a select and a sum of statically
shifted copies (what XLA:TPU runs fastest).

`jaxtl.data.transforms.warp_batch` samples canvases through their warps (crop, flip and
rotation; see `sampling_map`). Sampling four neighbours per pixel is a gather, and XLA:TPU's cost
model charges a gather per index, so on a TPU the warp costs more memory traffic than the rest
of a ResNet-50 step (benchmarks/README.md). Here the same warp is computed without a gather:

  * A warp's matrix is `k F Rot(a)`: a scale `k` (the crop's side over the output's), a mirror
    `F` of the columns, a rotation by `a` (recovered from the matrix, so the batch format stays
    the same), split into a quarter turn and a residual: Rot(a) = Rot(q 90) Rot(r),
    |r| <= `MAX_DEGREES` (`quarter_turn`; no quarter turns when the rotations stay within it).
    About the output's centre `c0`, output(p) = J(Rot(r)(p - c0) + c0), where
    J(q) = canvas(k P q + t'), P = F Rot(q 90) a signed permutation, is axis-aligned: J's rows
    and columns are each a bilinear resampling of the canvas's rows and columns (or, for an odd
    quarter, of its columns and rows), two matmuls per channel plane (`resampling_matrix`) of
    the canvas's planes or their transpose, chosen per image by a select where the uint8
    canvas becomes planes (the warp's smallest array; a select of the output's rot90s moves
    27% more bytes, benchmarks/warp_bytes.py), on a grid padded so that the rotation finds J
    wherever it looks (`Stages`). Quarter turns need square canvases.
  * Rot(r) = U L U with U = [[1, -tan(r/2)], [0, 1]] and L = [[1, 0], [sin r, 1]] (Paeth's
    three shears). Each shear moves every column (or row) by its own fractional amount with
    linear interpolation (`shear`): a sum over the integer shifts d of the statically shifted
    copy weighted by max(0, 1 - |d - shift|), one pass, on one padded grid (small rotations:
    up to `DIRECT_TERMS` shifts); for larger ones, a select of the copy shifted by the shift's
    whole multiple of a step, then that sum over the step's shifts, each stage keeping only
    what the next reads (at 224 px, +-45 degrees: 8.3 GB per v5e chip for 128 images, where
    the one-pass sums' temporaries outgrow its memory; benchmarks/warp_bytes.py).

Against bilinear sampling of the rotated canvas (the gather, `bilinear_warp`), crops, flips and
quarter turns give the same pixels (a rotation of 0 is three identity shears), and other
rotations interpolate three times: a linear ramp comes out exactly
(tests/data/test_shear_warp.py), edges are a little softer, and the border where the canvas ends
is interpolated, not cut. The shifts' range (and the padded grid) grows with the largest residual
rotation (static: `max_degrees`, at most `MAX_DEGREES` once quarter turns take the rest).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

# A warp's coefficients are rounded to this grid (jaxtl.data.transforms._warp_coordinates and
# here), so that both ways of warping sample from exactly the same coordinates.
WARP_QUANTUM = 2.0**-12
# a shear sums up to this many shifted copies in one pass (10 degrees at 224 px: 51)
DIRECT_TERMS = 64
MAX_DEGREES = 45.0  # the shears' bound; beyond it a quarter turn takes the rest of a rotation


@dataclasses.dataclass(frozen=True)
class Stages:
    """How far each stage of the warp reaches beyond a (height, width) output, for rotations
    (the shears' part of them) up to some bound, in whole pixels: J is resampled on rows
    -rows_0 .. height - 1 + rows_0 and columns -cols_1 .. width - 1 + cols_1; the first U
    shear keeps rows -rows_2 .. height - 1 + rows_2, the L shear columns 0 .. width - 1, the
    last U shear rows 0 .. height - 1. Each stage's array is no larger than what the next one
    reads."""

    rows_0: int
    cols_1: int
    rows_2: int
    tan_half: float  # the U shears' largest slope, tan(a / 2)
    sin: float  # the L shear's, sin a


def shear_ranges(max_degrees: float, height: int, width: int) -> Stages:
    """The `Stages` of rotations up to `max_degrees` of a (height, width) output."""
    if not 0.0 <= max_degrees <= MAX_DEGREES:
        raise ValueError(f"rotations up to {MAX_DEGREES} degrees, not {max_degrees}")
    angle = math.radians(max_degrees)
    tau, sigma = math.tan(angle / 2.0), math.sin(angle)
    half = (max(height, width) - 1) / 2.0
    # How far each stage reads from the centre, working back from the last shear (one pixel
    # more for the linear interpolation's second neighbour):
    rows_2 = half * (1.0 + tau)  # the last U shear reads J2's rows this far from the centre
    cols_1 = half + sigma * rows_2  # the L shear reads J1's columns
    rows_0 = rows_2 + tau * cols_1  # the first U shear reads J0's rows
    margin = lambda reach: math.ceil(reach - half) + 1
    return Stages(margin(rows_0), margin(cols_1), margin(rows_2), tau, sigma)


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


def shear(planes: Any, shifts: Any, *, axis: int, reach: int, start: int = 0,
          length: int | None = None) -> Any:
    """(B, C, H, W) planes resampled along `axis` (2: rows, 3: columns): line i of the other
    axis moves by `shifts[:, i]` (fractional, |shift| < `reach`), output[x] = planes[x + shift]
    for x in start .. start + length - 1 (default: the planes' own), linearly interpolated,
    zero beyond the planes.

    Up to `DIRECT_TERMS` whole shifts, one weighted sum of the statically shifted copies;
    beyond, two passes of about sqrt(2 reach) copies each: a select of the copy moved by the
    shift's multiple of `step`, then the weighted sum of the `step` + 1 copies that hold the
    rest (one sum of hundreds of copies outgrows a chip's memory in XLA:TPU's temporaries)."""
    import jax
    import jax.numpy as jnp

    size = planes.shape[axis]
    length = size if length is None else length
    # per line of the other axis: (B, 1, 1, L) when moving along rows, (B, 1, L, 1) along columns
    line_shape = (shifts.shape[0], 1, 1, -1) if axis == 2 else (shifts.shape[0], 1, -1, 1)

    def padded_reader(lowest: int, highest: int):
        """A reader of `count` values from index `first` of `planes` along `axis`, zero
        beyond them, for indices lowest .. highest."""
        below, above = max(0, -lowest), max(0, highest - (size - 1))
        padding = [(0, 0)] * 4
        padding[axis] = (below, above)
        source = jnp.pad(planes, padding)
        return lambda first, count: jax.lax.slice_in_dim(source, below + first,
                                                         below + first + count, axis=axis)

    def weighted_sum(read, offsets, fraction):
        out = None
        for d in offsets:
            weight = jnp.maximum(0.0, 1.0 - jnp.abs(d - fraction)).reshape(line_shape)
            term = weight.astype(planes.dtype) * read(d)
            out = term if out is None else out + term
        return out

    if 2 * reach + 1 <= DIRECT_TERMS:
        read = padded_reader(start - reach, start + length - 1 + reach)
        return weighted_sum(lambda d: read(start + d, length), range(-reach, reach + 1), shifts)
    step = math.ceil(math.sqrt(2 * reach + 1))
    coarse = jnp.floor(shifts / step)  # shift = step * coarse + fine, 0 <= fine < step
    fine = shifts - step * coarse
    lowest, highest = math.floor(-reach / step), math.floor(reach / step)
    read = padded_reader(start + step * lowest, start + length - 1 + step * (highest + 1))
    coarse = coarse.reshape(line_shape)
    moved = read(start + step * lowest, length + step)
    for c in range(lowest + 1, highest + 1):  # moved[x] = planes[start + x + step * coarse]
        moved = jnp.where(coarse == c, read(start + step * c, length + step), moved)
    return weighted_sum(lambda d: jax.lax.slice_in_dim(moved, d, d + length, axis=axis),
                        range(step + 1), fine)


def quarter_turn(cos: Any, sin: Any) -> tuple[Any, Any, Any, Any]:
    """(cos q90, sin q90, cos r, sin r) of the quarter turn q and residual r, |r| <= 45
    degrees, with Rot(a) = Rot(q 90) Rot(r) for a = atan2(sin, cos); exact (the residual is the
    rotation's (cos, sin) turned back by whole quarters: a swap and signs)."""
    import jax.numpy as jnp

    # the quarter closest to a: 0 (cos dominates, positive), 1 (sin), 2 (-cos), 3 (-sin)
    quarter = jnp.where(jnp.abs(cos) >= jnp.abs(sin), jnp.where(cos >= 0, 0, 2),
                        jnp.where(sin >= 0, 1, 3))
    cos_q = jnp.array([1.0, 0.0, -1.0, 0.0])[quarter]
    sin_q = jnp.array([0.0, 1.0, 0.0, -1.0])[quarter]
    # Rot(r) = Rot(-q 90) Rot(a)
    return cos_q, sin_q, cos_q * cos + sin_q * sin, cos_q * sin - sin_q * cos


def shear_warp(images: Any, warps: Any, *, max_degrees: float, dtype: Any = None) -> Any:
    """(B, H, W, C) canvases sampled through their (B, 2, 3) warps, rotations up to
    `max_degrees` (any, up to 180; beyond `MAX_DEGREES` the canvases must be square) -> float32
    (B, H, W, C); see the module doc. `dtype`: what the matmuls and shears compute in (None:
    float32; TPUs: bfloat16, whose 8 bits of mantissa hold the 256 levels of 8-bit pixels, and
    which a TPU's float32 matmul multiplies in by default)."""
    import jax
    import jax.numpy as jnp

    height, width = images.shape[1:3]
    quarters = max_degrees > MAX_DEGREES  # static: whether any warp needs a quarter turn
    if quarters and height != width:
        raise ValueError(f"rotations beyond {MAX_DEGREES} degrees turn the canvas by quarters, "
                         f"which needs a square canvas, not {height}x{width}")
    stages = shear_ranges(min(max_degrees, MAX_DEGREES), height, width)
    half = (max(height, width) - 1) / 2.0
    reach = lambda slope, margin: math.ceil(slope * (half + margin)) + 1  # of a shear
    # J's rows, J1's columns and rows, J2's columns, J3's rows beyond the output, in pixels:
    # small rotations shear one grid padded by the largest margin (measured fewest bytes,
    # benchmarks/warp_bytes.py); larger ones shrink the grid stage by stage (`Stages`)
    uniform = stages.rows_0
    margins = ((uniform,) * 5 if 2 * reach(stages.sin, uniform) + 1 <= DIRECT_TERMS
               else (stages.rows_0, stages.cols_1, stages.rows_2, 0, 0))
    rows_0, cols_1, rows_2, cols_2, rows_3 = margins
    centre = jnp.array([(height - 1) / 2.0, (width - 1) / 2.0], jnp.float32)
    rows = jnp.arange(-rows_0, height + rows_0, dtype=jnp.float32)  # J's grid
    cols = jnp.arange(-cols_1, width + cols_1, dtype=jnp.float32)

    def axis_aligned(warp: Any) -> tuple[Any, Any, Any, Any, Any]:
        k, sign, cos, sin, offset = decompose(warp)
        cos_q, sin_q, cos, sin = (quarter_turn(cos, sin) if quarters
                                  else (1.0, 0.0, cos, sin))
        rotated_centre = jnp.array([cos * centre[0] - sin * centre[1],
                                    sin * centre[0] + cos * centre[1]])
        moved = rotated_centre - centre
        # t' of J(q) = canvas(k P q + t'), P = F Rot(q 90) = [[cq, -sq], [sign sq, sign cq]]
        start = offset + k * jnp.array([cos_q * moved[0] - sin_q * moved[1],
                                        sign * (sin_q * moved[0] + cos_q * moved[1])])
        # J[i, j] = canvas[k (cq i - sq j) + t'0, k sign (sq i + cq j) + t'1]: with an even
        # quarter J's rows come from the canvas's rows, with an odd one from its columns
        odd = jnp.abs(sin_q) > 0.5
        row_weights = resampling_matrix(k * (cos_q + sign * sin_q) * rows
                                        + jnp.where(odd, start[1], start[0]), height)
        col_weights = resampling_matrix(k * (sign * cos_q - sin_q) * cols
                                        + jnp.where(odd, start[0], start[1]), width)
        return row_weights, col_weights, cos, sin, odd

    # on the grid the gather rounds warps to, so crops agree exactly
    warps = jnp.round(warps.astype(jnp.float32) / WARP_QUANTUM) * WARP_QUANTUM
    row_weights, col_weights, cos, sin, odd = jax.vmap(axis_aligned)(warps)
    dtype = jnp.float32 if dtype is None else dtype
    planes = jnp.transpose(images, (0, 3, 1, 2))  # (B, C, H, W)
    if quarters:  # an odd quarter turn resamples the transposed planes
        planes = jnp.where(odd[:, None, None, None], jnp.transpose(images, (0, 3, 2, 1)),
                           planes)
    planes = planes.astype(dtype)
    grid = jnp.einsum("bchw,bjw->bchj", planes, col_weights.astype(dtype))
    grid = jnp.einsum("bih,bchj->bcij", row_weights.astype(dtype), grid)  # J, padded grid
    # Rot(r) = U L U, applied last to first: output(d) = J(U L U d) about the centre; each
    # shear keeps what the next one reads.
    tan_half = jnp.where(jnp.abs(cos + 1.0) > 1e-6, sin / (1.0 + cos), 0.0)[:, None]
    centred_cols = cols - centre[1]  # J's and J1's columns
    centred_rows = jnp.arange(-rows_2, height + rows_2, dtype=jnp.float32) - centre[0]  # J1's
    # J1(y) = J(U y): rows -rows_2 .. of J's -rows_0 ..
    grid = shear(grid, -tan_half * centred_cols, axis=2, start=rows_0 - rows_2,
                 length=height + 2 * rows_2, reach=reach(stages.tan_half, cols_1))
    # J2(z) = J1(L z): columns -cols_2 .. of J1's -cols_1 ..
    grid = shear(grid, sin[:, None] * centred_rows, axis=3, start=cols_1 - cols_2,
                 length=width + 2 * cols_2, reach=reach(stages.sin, rows_2))
    # J3(w) = J2(U w): rows -rows_3 .. of J2's -rows_2 ..
    grid = shear(grid, -tan_half * centred_cols[cols_1 - cols_2:cols_1 + width + cols_2],
                 axis=2, start=rows_2 - rows_3, length=height + 2 * rows_3,
                 reach=reach(stages.tan_half, cols_2))
    grid = grid[:, :, rows_3:rows_3 + height, cols_2:cols_2 + width]
    return jnp.moveaxis(grid, 1, -1).astype(jnp.float32)
