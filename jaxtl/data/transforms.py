"""Per-image work done in Grain workers: decode -> crop/resize -> augment -> wire pixels.

A dataset chooses how its images are decoded (a `Decoder`); the rest is shared:

- Image files (JPEG, PNG: EyePACS, chest X-rays, prepared shards of them) decode with Pillow
  into a `PIL.Image` (JPEG draft decoding) and take the Pillow path. Without augmentation
  (evaluation) the centred square is resized to `resolution` in one antialiased Pillow resize.
  With augmentation the host does only what must happen on the host: the image, resized so
  its short side is `resolution` (one antialiased Pillow resize, or none for prepared shards
  stored at that size: then a plain slice), is cut to the `resolution` square that holds the
  random crop (the *canvas*), and the crop, flip and rotation travel beside it as one affine
  map (`warp`, a (2, 3) float32 map from output to canvas (row, col) indices). The jitted
  train step samples the canvas through that map (bilinear, `warp_batch`); rotated corners
  show the canvas around the crop, and black where they leave the canvas. Decoding and one
  resize are what a bare decode-and-resize loop does too, so the host keeps pace with it, and
  prepared shards need no resampling on the host at all (benchmarks/decode.py).
- Arrays (CoNSeP nucleus patches from the patch cache, BigEarthNet band stacks) decode into an
  (H, W, C) NumPy array with any number of channels and take the NumPy/SciPy path: crop, resize,
  flip and rotate are composed into one affine map and sampled once per channel with
  `scipy.ndimage.affine_transform` (bilinear), giving float32 pixels. Pixels that a rotation
  brings in from outside the image are mirrored from inside (`mode="reflect"`) rather than
  black. Downscaling by a factor k > 1 first blurs with a Gaussian of sigma (k - 1) / 2 (the
  anti-aliasing rule of scikit-image's `resize`).

Both paths draw the same random numbers in the same order, so a crop, flip or rotation means
the same thing on either. `ImageTransform.pixels` gives an example's pixels as the model sees
them on the host (the canvas warped with SciPy, rounded to uint8), for inspection and tests.
Normalisation is per channel: `mean` and `std` are on the 0..1 scale of the data, and a
decoder's `value_scale` says which decoded value is 1.0 (255 for 8-bit images, 10000 for
Sentinel-2 reflectances).

Pixels leave the workers in the dtype they cross to the device in (`wire_dtype`: uint8 for
8-bit data, uint16 for 16-bit data, a quarter or half of float32's bytes); the array path
rounds its resampled values to it. Normalisation happens on the device, inside the jitted steps
(`ImageTransform.normalisation`, a `Normalisation`); `ImageTransform.normalise` is the same
formula on the host.

Transforms and decoders are frozen dataclasses so they pickle into worker processes; every random
choice comes from the `numpy.random.Generator` that Grain derives from the config seed and the
element's position, so a run is reproducible and resumable.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from jaxtl.core.errors import UnreadableImage
from jaxtl.data import shear_warp
from jaxtl.data.decoders import Decoder, ImageFileDecoder
from jaxtl.data.records import DataError, Record
from jaxtl.data.shear_warp import WARP_QUANTUM


def wire_dtype(decoder: Decoder) -> str:
    """The dtype a decoder's pixels cross to the device in: its `wire_dtype` if it declares
    one (16-bit data: 'uint16'), 'uint8' for 8-bit data (value_scale 255), else 'float32'."""
    declared = getattr(decoder, "wire_dtype", None)
    if declared:
        return declared
    return "uint8" if decoder.value_scale == 255.0 else "float32"


def to_wire(pixels: np.ndarray, dtype: str) -> np.ndarray:
    """`pixels` in `dtype`: rounded and clipped to an integer dtype's range, else float32."""
    kind = np.dtype(dtype)
    if kind.kind != "u":
        return pixels.astype(np.float32, copy=False)
    if pixels.dtype == kind:
        return pixels
    return np.clip(np.rint(pixels), 0, np.iinfo(kind).max).astype(kind)


@dataclasses.dataclass(frozen=True)
class Normalisation:
    """Per-channel (pixel - mean) / std on the decoded scale, for use inside a jitted step:
    pixels arrive in their wire dtype and become float32 on the device."""

    mean: tuple[float, ...]  # on the decoded scale (0..1 mean times the decoder's value_scale)
    std: tuple[float, ...]

    def __call__(self, images: Any) -> Any:
        import jax.numpy as jnp

        return ((images.astype(jnp.float32) - jnp.asarray(self.mean, jnp.float32))
                / jnp.asarray(self.std, jnp.float32))


@dataclasses.dataclass(frozen=True)
class ImageTransform:
    """Decode -> square crop resized to `resolution` -> augment -> normalise, per image."""

    resolution: int
    channels: int
    mean: tuple[float, ...]  # per channel, on the 0..1 scale (see `Decoder.value_scale`)
    std: tuple[float, ...]
    augment: tuple[str, ...] = ()  # any of 'crop', 'flip', 'rotate'
    crop_scale_min: float = 0.7
    rotate_degrees: float = 10.0
    decoder: Decoder | None = None  # None: image files through Pillow with `channels`

    def __post_init__(self) -> None:
        if self.decoder is None:
            object.__setattr__(self, "decoder", ImageFileDecoder(self.channels))
        if self.decoder.channels != self.channels:
            raise ValueError(f"the decoder gives {self.decoder.channels} channels, the "
                             f"transform expects {self.channels}")
        if not len(self.mean) == len(self.std) == self.channels:
            raise ValueError(f"mean and std need one value per channel ({self.channels}); "
                             f"got {len(self.mean)} and {len(self.std)}")

    def crop_box(self, width: float, height: float,
                 rng: np.random.Generator | None) -> tuple[float, float, float, float]:
        """The centred square by default; with 'crop', a random square of random area."""
        side = float(min(width, height))
        if rng is not None and "crop" in self.augment:
            side *= float(np.sqrt(rng.uniform(self.crop_scale_min, 1.0)))
            left = rng.uniform(0.0, width - side)
            top = rng.uniform(0.0, height - side)
        else:
            left, top = (width - side) / 2.0, (height - side) / 2.0
        return left, top, left + side, top + side

    def _flip_and_angle(self, rng: np.random.Generator | None) -> tuple[bool, float]:
        flip = rng is not None and "flip" in self.augment and rng.uniform() < 0.5
        angle = 0.0
        if rng is not None and "rotate" in self.augment:
            angle = float(rng.uniform(-self.rotate_degrees, self.rotate_degrees))
        return flip, angle

    @property
    def wire_dtype(self) -> str:
        return wire_dtype(self.decoder)

    @property
    def max_rotation(self) -> float:
        """The largest rotation of a training example, in degrees (0 without 'rotate')."""
        return self.rotate_degrees if "rotate" in self.augment else 0.0

    @property
    def warps_on_device(self) -> bool:
        """Whether training examples are a canvas and a `warp` (augmented images from a
        decoder that gives Pillow images) rather than finished pixels."""
        return bool(self.augment) and bool(getattr(self.decoder, "gives_pillow_images", False))

    def example(self, path: str, rng: np.random.Generator | None
                ) -> tuple[np.ndarray, np.ndarray | None]:
        """(pixels in the wire dtype, None), or (canvas, warp) when `rng` is given and
        `warps_on_device` (see the module doc)."""
        decoded = self._decode(path)
        if isinstance(decoded, Image.Image):
            if rng is not None and self.warps_on_device:
                return self._pil_canvas(decoded, rng)
            return self._pil_pixels(decoded), None
        return to_wire(self._array_pixels(decoded, rng), self.wire_dtype), None

    def wire_pixels(self, path: str, rng: np.random.Generator | None) -> np.ndarray:
        """`pixels` in the dtype that crosses to the device."""
        return to_wire(self.pixels(path, rng), self.wire_dtype)

    def pixels(self, path: str, rng: np.random.Generator | None) -> np.ndarray:
        """HWC pixels at `resolution` as the model sees them (uint8 from image files, float32
        from arrays); augmented when `rng` is given (from image files: the canvas warped
        here, on the host, as the train step does on the device, rounded to uint8)."""
        decoded = self._decode(path)
        if not isinstance(decoded, Image.Image):
            return self._array_pixels(decoded, rng)
        if rng is not None and self.warps_on_device:
            return to_wire(warp_on_host(*self._pil_canvas(decoded, rng)), "uint8")
        return self._pil_pixels(decoded)

    def _decode(self, path: str) -> Image.Image | np.ndarray:
        decoded = self.decoder.decode(path, self.resolution)
        if not isinstance(decoded, Image.Image) and (decoded.ndim != 3
                                                     or decoded.shape[-1] != self.channels):
            raise DataError(f"{path} decoded to shape {decoded.shape}; expected (H, W, "
                            f"{self.channels})")
        return decoded

    def _pil_pixels(self, image: Image.Image) -> np.ndarray:
        """The centred square resized to `resolution`."""
        box = self.crop_box(image.width, image.height, None)
        image = image.resize((self.resolution, self.resolution), Image.Resampling.BILINEAR,
                             box=box)
        return _hwc(image)

    def _pil_canvas(self, image: Image.Image,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The canvas that holds a random crop, and the warp that crops, flips and rotates it.

        Geometry is in the pixels of the image resized so its short side is `resolution`;
        `scale` is the decoded image's pixels per such pixel."""
        scale = min(image.width, image.height) / self.resolution
        width, height = image.width / scale, image.height / scale
        left, top, right, _ = self.crop_box(width, height, rng)
        side = right - left
        flip, angle = self._flip_and_angle(rng)
        x = _canvas_start(left, side, width, self.resolution)
        y = _canvas_start(top, side, height, self.resolution)
        side = min(side, x + self.resolution - left, y + self.resolution - top)
        if scale == 1.0:  # stored at this size: a slice
            canvas = image.crop((int(x), int(y), int(x) + self.resolution,
                                 int(y) + self.resolution))
        else:
            canvas = image.resize((self.resolution, self.resolution), Image.Resampling.BILINEAR,
                                  box=(x * scale, y * scale, (x + self.resolution) * scale,
                                       (y + self.resolution) * scale))
        matrix, offset = sampling_map(self.resolution, left - x, top - y, side, flip, angle)
        return _hwc(canvas), np.concatenate([matrix, offset[:, None]], 1).astype(np.float32)

    def _array_pixels(self, array: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        height, width = array.shape[:2]
        left, top, right, _ = self.crop_box(width, height, rng)
        flip, angle = self._flip_and_angle(rng)
        side = right - left
        if (not flip and angle == 0.0 and left == 0.0 and top == 0.0
                and side == width == height == self.resolution):
            return array.astype(np.float32)  # nothing to resample: exact
        matrix, offset = sampling_map(self.resolution, left, top, side, flip, angle)
        scale = side / self.resolution
        out = np.empty((self.resolution, self.resolution, array.shape[-1]), np.float32)
        for channel in range(array.shape[-1]):
            plane = array[..., channel].astype(np.float32)
            if scale > 1.0:
                plane = ndimage.gaussian_filter(plane, sigma=(scale - 1.0) / 2.0,
                                                mode="reflect")
            ndimage.affine_transform(plane, matrix, offset,
                                     output_shape=(self.resolution, self.resolution),
                                     output=out[..., channel], order=1, mode="reflect")
        return out

    def _scaled(self) -> tuple[np.ndarray, np.ndarray]:
        scale = np.float32(self.decoder.value_scale)
        return (np.asarray(self.mean, np.float32) * scale,
                np.asarray(self.std, np.float32) * scale)

    @property
    def normalisation(self) -> Normalisation:
        """The normalisation the jitted steps apply to this transform's pixels."""
        mean, std = self._scaled()
        return Normalisation(tuple(float(m) for m in mean), tuple(float(s) for s in std))

    def normalise(self, pixels: np.ndarray) -> np.ndarray:
        """The normalisation on the host, in float32 (what `normalisation` computes)."""
        mean, std = self._scaled()
        return (pixels.astype(np.float32) - mean) / std

    def blank(self) -> np.ndarray:
        """The stand-in pixels of padding and skipped images (never scored)."""
        return np.zeros((self.resolution, self.resolution, self.channels), self.wire_dtype)


def _hwc(image: Image.Image) -> np.ndarray:
    array = np.asarray(image, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


def _canvas_start(start: float, side: float, length: float, resolution: int) -> float:
    """Where the `resolution`-long canvas begins along an axis of `length` (whole pixels, so
    pixels stored at this size are sliced, not resampled): inside the image, holding the crop
    [start, start + side] and centred on it where it can; where no whole-pixel start holds
    the crop, the last one before it (the crop then overhangs by under a pixel and is
    trimmed)."""
    if length <= resolution:
        return 0.0
    centred = start + side / 2.0 - resolution / 2.0
    low, high = math.ceil(start + side - resolution), math.floor(start)
    begin = min(max(round(centred), low), high) if low <= high else high
    return float(min(max(begin, 0), math.floor(length - resolution)))


IDENTITY_WARP = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)




def _warp_coordinates(xp: Any, shape: tuple[int, ...], warp: Any) -> tuple[Any, Any, Any]:
    """The (row, col) canvas coordinates `warp` samples for each output pixel, and whether
    each lies on the canvas (within its outer pixel edges, half a pixel beyond the outer
    centres)."""
    height, width = shape[:2]
    rows, cols = xp.meshgrid(xp.arange(height, dtype=xp.float32),
                             xp.arange(width, dtype=xp.float32), indexing="ij")
    # On the grid of WARP_QUANTUM, every product and sum below is exact in float32 (for
    # coefficients up to 1 and canvases up to 2048 pixels), so the coordinates do not
    # depend on whether a compiler fuses them into multiply-adds: XLA may compute them
    # more than once in one step, and a coordinate a hair below a whole number in one copy
    # and on it in another would take a pixel's neighbours and its weights from different rows.
    warp = xp.round(warp / WARP_QUANTUM) * WARP_QUANTUM
    row = warp[0, 0] * rows + warp[0, 1] * cols + warp[0, 2]
    col = warp[1, 0] * rows + warp[1, 1] * cols + warp[1, 2]
    inside = ((row >= -0.5) & (row <= height - 0.5) & (col >= -0.5) & (col <= width - 0.5))
    return row, col, inside


def warp_on_host(canvas: np.ndarray, warp: np.ndarray) -> np.ndarray:
    """(H, W, C) float32: the canvas sampled through `warp` with SciPy, bilinear; on the
    canvas its edge pixels extend to its outer edges, beyond it is zero (black): what
    `warp_batch` computes on the device."""
    row, col, inside = _warp_coordinates(np, canvas.shape, warp.astype(np.float64))
    out = np.empty(canvas.shape, np.float32)
    for channel in range(canvas.shape[-1]):
        out[..., channel] = ndimage.map_coordinates(
            canvas[..., channel].astype(np.float32), [row, col], order=1, mode="nearest")
    return out * inside[..., None]


def warp_batch(images: Any, warps: Any, max_rotation: float | None = None) -> Any:
    """On the device, inside a jitted step: (B, H, W, C) canvases sampled through their
    (B, 2, 3) warps (see `warp_on_host`) -> float32 (B, H, W, C); `max_rotation`: the largest
    rotation the warps hold, in degrees (`ImageTransform.max_rotation`), or None for warps that
    are any affine map.

    On CPUs and GPUs each output pixel's four canvas neighbours are gathered in the wire dtype
    (a pixel's channels together), then interpolated in float32. XLA:TPU's cost model charges a
    gather per index, which made the warp cost more memory traffic than the rest of a ResNet-50
    step (benchmarks/README.md), so on TPUs the warps of `sampling_map` (crop, flip, rotation by
    any angle; a `max_rotation` promises warps of that kind) are computed without gathers, in
    bfloat16 (jaxtl.data.shear_warp: matmuls, a quarter turn and shears; crops, flips and
    quarter turns give the same pixels but for bfloat16's rounding, other rotations interpolate
    three times). Other affine maps (`max_rotation=None`: RandAugment's shears,
    jaxtl.data.device_augment) are gathered from the canvases' channel planes (B, C, H * W),
    not from pixels whose 3 channels TPUs pad to 128 lanes."""
    import functools

    import jax
    import jax.numpy as jnp

    on_tpu = (functools.partial(bilinear_warp, channel_planes=True) if max_rotation is None
              else functools.partial(shear_warp.shear_warp, max_degrees=max_rotation,
                                     dtype=jnp.bfloat16))
    return jax.lax.platform_dependent(
        images, warps, tpu=on_tpu, default=functools.partial(bilinear_warp, channel_planes=False))


def bilinear_warp(images: Any, warps: Any, *, channel_planes: bool) -> Any:
    """`warp_batch`, its four neighbours gathered from (B, C, H * W) channel planes
    (`channel_planes`) or from (B, H * W, C) pixels."""
    import jax
    import jax.numpy as jnp

    batch, height, width, channels = images.shape
    row, col, inside = jax.vmap(
        lambda warp: _warp_coordinates(jnp, (height, width), warp))(warps)
    # On the canvas its edge pixels extend to its outer edges (SciPy's mode "nearest").
    row, col = jnp.clip(row, 0, height - 1), jnp.clip(col, 0, width - 1)
    top = jnp.clip(jnp.floor(row), 0, max(height - 2, 0))
    left = jnp.clip(jnp.floor(col), 0, max(width - 2, 0))
    down, right = row - top, col - left  # the weights of the lower and right neighbours
    top, left = top.astype(jnp.int32), left.astype(jnp.int32)
    bottom, across = jnp.minimum(top + 1, height - 1), jnp.minimum(left + 1, width - 1)
    pixels = height * width
    # (B, C, H * W) or (B, H * W, C), and the shape of one value per output pixel beside it
    source, axis, per_pixel = ((jnp.moveaxis(images, -1, 1).reshape(batch, channels, pixels),
                                2, (batch, 1, pixels)) if channel_planes else
                               (images.reshape(batch, pixels, channels), 1, (batch, pixels, 1)))

    def at(rows: Any, cols: Any) -> Any:
        return jnp.take_along_axis(source, (rows * width + cols).reshape(per_pixel), axis=axis,
                                   mode="clip").astype(jnp.float32)

    weight = lambda values: values.reshape(per_pixel)
    upper = at(top, left) + weight(right) * (at(top, across) - at(top, left))
    lower = at(bottom, left) + weight(right) * (at(bottom, across) - at(bottom, left))
    sampled = (upper + weight(down) * (lower - upper)) * weight(inside)
    if channel_planes:
        return jnp.moveaxis(sampled.reshape(batch, channels, height, width), 1, -1)
    return sampled.reshape(batch, height, width, channels)


def sampling_map(resolution: int, left: float, top: float, side: float, flip: bool,
                 angle: float) -> tuple[np.ndarray, np.ndarray]:
    """The (row, col) map from output to input array indices for `ndimage.affine_transform`.

    The output is the square (left, top, side) of the input resized to `resolution`, then
    mirrored left-right when `flip`, then rotated `angle` degrees counter-clockwise about its
    centre, the same sequence and conventions as the Pillow path (`Image.resize(box=...)`,
    `transpose(FLIP_LEFT_RIGHT)`, `rotate(angle)`). Coordinates are pixel edges (a pixel's
    centre is at index + 0.5), as in Pillow.
    """
    a = -math.radians(angle)  # Pillow's rotate maps output to input with the negated angle
    centre = resolution / 2.0
    k = side / resolution
    # In (x, y) edge coordinates, output -> rotated -> flipped -> input:
    #   x_r = cos a (x - c) + sin a (y - c) + c,  y_r = -sin a (x - c) + cos a (y - c) + c
    #   x_f = R - x_r (flip) or x_r,               y_f = y_r
    #   x_in = left + k x_f,                       y_in = top + k y_f
    sign = -1.0 if flip else 1.0
    rotate = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    rotate_offset = np.array([centre, centre]) - rotate @ np.array([centre, centre])
    flip_matrix = np.diag([sign, 1.0])
    flip_offset = np.array([resolution if flip else 0.0, 0.0])
    xy_matrix = k * flip_matrix @ rotate
    xy_offset = k * (flip_matrix @ rotate_offset + flip_offset) + np.array([left, top])
    # Index coordinates: edge = index + 0.5 on both sides; then swap (x, y) -> (row, col).
    xy_offset = xy_offset + xy_matrix @ np.array([0.5, 0.5]) - 0.5
    swap = np.array([[0.0, 1.0], [1.0, 0.0]])
    return swap @ xy_matrix @ swap, swap @ xy_offset


BAD_IMAGE_POLICIES = ("error", "skip")
VERIFY_COMMAND = "python -m jaxtl.commands.verify"  # lists every unreadable image of a config's splits


def unreadable(record: Record, error: DataError, split: str) -> UnreadableImage:
    """The error that stops a run at an unreadable image (`data.bad_images=error`)."""
    return UnreadableImage(
        f"{error} (image {record.image_id} of patient {record.patient}, {split} split); "
        f"`{VERIFY_COMMAND}` with this run's --config lists every unreadable image, or "
        f"--config.data.bad_images=skip leaves them out", record.image_id, record.path)


@dataclasses.dataclass(frozen=True)
class TrainExample:
    """Grain RandomMap: Record -> augmented example (pixels in the wire dtype; with
    `transform.warps_on_device`, a canvas and its `warp`, applied in the train step).

    An image that cannot be read stops the run (`skip_bad_images` False) or becomes a blank
    stand-in with `valid` False, which the train step leaves out of the loss, so batches keep
    their size and the same images are skipped in every run and epoch.
    """

    transform: ImageTransform
    skip_bad_images: bool = False

    def __call__(self, record: Record, rng: np.random.Generator) -> dict[str, np.ndarray]:
        try:
            image, warp = self.transform.example(record.path, rng)
        except DataError as error:
            if not self.skip_bad_images:
                raise unreadable(record, error, "train") from None
            image, warp, valid = self.transform.blank(), IDENTITY_WARP, False
        else:
            valid = True
        example = {"image": image, "label": np.asarray(record.label, np.int32),
                   "valid": np.bool_(valid)}
        if self.transform.warps_on_device:
            example["warp"] = warp
        return example


@dataclasses.dataclass(frozen=True)
class EvalExample:
    """Grain Map: (Record or None for padding, index in the split) -> example with a mask.

    `mask` is False for the padding of the last batch; `valid` is False for an image that
    cannot be read when `skip_bad_images` (it is reported as excluded, not scored)."""

    transform: ImageTransform
    label_shape: tuple[int, ...] = ()  # () for a class index, (L,) for L labels
    skip_bad_images: bool = False
    split: str = "evaluation"

    def __call__(self, item: tuple[Record | None, int]) -> dict[str, np.ndarray]:
        record, index = item
        if record is None:
            return {"image": self.transform.blank(),
                    "label": np.full(self.label_shape, -1 if self.label_shape else 0, np.int32),
                    "index": np.int32(-1), "mask": np.bool_(False), "valid": np.bool_(False)}
        try:
            image = self.transform.wire_pixels(record.path, None)
        except DataError as error:
            if not self.skip_bad_images:
                raise unreadable(record, error, self.split) from None
            image, valid = self.transform.blank(), False
        else:
            valid = True
        return {"image": image, "label": np.asarray(record.label, np.int32),
                "index": np.int32(index), "mask": np.bool_(True), "valid": np.bool_(valid)}
