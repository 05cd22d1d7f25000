"""Strong training augmentations inside the jitted train step, as timm's fine-tuning recipes
(RETFound's main_finetune.py, timm's train.py) use them:

- RandAugment (`data.randaugment`, a timm string such as 'rand-m9-mstd0.5-inc1'): timm's
  `rand_augment_transform` with its increasing op set (`OPS`), on the pixels (0..255) after the
  warp, before normalisation. Each image takes `n` ops drawn uniformly with replacement; each
  op is applied with probability `p`, at a magnitude drawn from N(m, mstd) (uniform in 0..m
  for mstd > 100) clipped to 0..mmax, with a random sign where timm negates its level. Every
  op gives whole 0..255 values, as Pillow's uint8 images hold (docs/prepared-data.md lists
  where an op differs from Pillow). Geometric ops (rotate, shear, translate) are one affine
  map per image, sampled bilinearly with the warp's sampler (`jaxtl.data.transforms.warp_batch`)
  and filled with the mean colour (`data.mean`) where they leave the image.
- Random erasing (`data.random_erasing`, a probability): timm's `RandomErasing` mode 'pixel',
  one box of area 0.02..1/3 of the image and log aspect ratio in log(0.3)..log(1/0.3) (ten
  tries; none fitting: no box), filled with N(0, 1) noise per pixel, after normalisation.
- Mixup / CutMix (`train.mixup_alpha`, `train.cutmix_alpha`, `train.mixup_prob`,
  `train.mixup_switch_prob`): timm's `Mixup` in mode 'batch': one lam ~ Beta(alpha, alpha) per
  batch, each image mixed with its partner in the flipped batch; CutMix pastes the partner's
  box of side sqrt(1 - lam) and lam becomes 1 - the box's actual area; the loss mixes the
  targets with the same lam (`jaxtl.core.tasks.Mix`).

Every random number comes from the step's key (`augment_key`), per example through
`jax.random.split`, so a step's augmentation depends on the run's seed and the step number
only: a resumed run draws what the uninterrupted one drew.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxtl.core.errors import ConfigError
from jaxtl.core.tasks import Mix
from jaxtl.data.transforms import warp_batch

OPS = ("AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing",
       "SolarizeIncreasing", "SolarizeAdd", "ColorIncreasing", "ContrastIncreasing",
       "BrightnessIncreasing", "SharpnessIncreasing", "ShearX", "ShearY", "TranslateXRel",
       "TranslateYRel")  # timm's _RAND_INCREASING_TRANSFORMS, in its order
GEOMETRIC = ("Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")
LEVEL_DENOM = 10.0  # timm's _LEVEL_DENOM: magnitude 10 is an op's full strength
TRANSLATE_PCT = 0.45  # timm's default translate_pct: a full-strength shift of 45% of the side
UNIFORM_ABOVE = 100.0  # an mstd above this draws the magnitude uniformly in 0..m (timm)
RANDAUGMENT_FIELDS = ("m<magnitude>", "n<ops per image>", "mstd<magnitude std>",
                      "mmax<largest magnitude>", "p<op probability>", "inc1")
RANDAUGMENT_EXAMPLE = "rand-m9-mstd0.5-inc1"

ERASE_AREA = (0.02, 1.0 / 3.0)  # timm RandomErasing: min_area, max_area
ERASE_ASPECT = (0.3, 1.0 / 0.3)  # min_aspect, 1 / min_aspect
ERASE_TRIES = 10


@dataclasses.dataclass(frozen=True)
class RandAugment:
    """timm's RandAugment with the increasing op set; defaults are timm's."""

    magnitude: float = LEVEL_DENOM
    num_layers: int = 2
    magnitude_std: float = 0.0  # math.inf: uniform in 0..magnitude
    magnitude_max: float = LEVEL_DENOM
    prob: float = 0.5
    fill: tuple[float, ...] = (128.0, 128.0, 128.0)  # where geometric ops leave the image

    def __call__(self, images: Any, key: Any) -> Any:
        """(B, H, W, C) pixels on the 0..255 scale -> the augmented pixels (float32, whole
        values 0..255)."""
        images = jnp.clip(jnp.round(images.astype(jnp.float32)), 0.0, 255.0)
        keys = jax.random.split(key, images.shape[0])
        for layer in range(self.num_layers):
            layer_keys = jax.vmap(functools.partial(jax.random.fold_in, data=layer))(keys)
            images = apply_ops(images, *jax.vmap(self.draw)(layer_keys), fill=self.fill)
        return images

    def draw(self, key: Any) -> tuple[Any, Any, Any, Any]:
        """One image's (op index, applied, magnitude, sign) for one layer."""
        op_key, apply_key, magnitude_key, sign_key = jax.random.split(key, 4)
        op = jax.random.randint(op_key, (), 0, len(OPS))
        applied = jax.random.uniform(apply_key) < self.prob
        if self.magnitude_std == math.inf:
            magnitude = jax.random.uniform(magnitude_key) * self.magnitude
        else:
            magnitude = self.magnitude + self.magnitude_std * jax.random.normal(magnitude_key)
        magnitude = jnp.clip(magnitude, 0.0, self.magnitude_max)
        sign = jnp.where(jax.random.uniform(sign_key) < 0.5, 1.0, -1.0)
        return op, applied, magnitude, sign


def parse_randaugment(text: str) -> RandAugment | None:
    """A timm RandAugment string ('rand-m9-mstd0.5-inc1') -> RandAugment; '' -> None.
    ValueError saying what is wrong (an unknown field, a value out of range, no inc1;
    TypeError: not a string)."""
    if not isinstance(text, str):
        raise TypeError(f"is {text!r}; expected '' or a timm RandAugment string such as "
                         f"{RANDAUGMENT_EXAMPLE!r}")
    if not text.strip():
        return None
    parts = text.strip().split("-")
    fields = ", ".join(RANDAUGMENT_FIELDS)
    if parts[0] != "rand":
        raise ValueError(f"is {text!r}; a RandAugment string starts with 'rand-', e.g. "
                         f"{RANDAUGMENT_EXAMPLE!r}")
    values: dict[str, float] = {}
    for part in parts[1:]:
        match = re.fullmatch(r"([a-z]+)(\d+(?:\.\d*)?)", part)
        if not match or match[1] not in ("m", "n", "mstd", "mmax", "p", "inc"):
            raise ValueError(f"is {text!r}; unknown field {part!r} (known: {fields}, joined by "
                             f"'-' as in {RANDAUGMENT_EXAMPLE!r})")
        values[match[1]] = float(match[2])
    if values.get("inc") != 1:
        raise ValueError(f"is {text!r}; jaxtl implements timm's increasing op set only: add "
                         f"'-inc1' (without it timm uses its other op set)")
    for name in ("m", "n", "mmax"):
        if name in values and values[name] != int(values[name]):
            raise ValueError(f"is {text!r}; field {name} takes a whole number")
    if values.get("n", 2) < 1:
        raise ValueError(f"is {text!r}; n (ops per image) must be at least 1")
    if not 0.0 <= values.get("p", 0.5) <= 1.0:
        raise ValueError(f"is {text!r}; p (the probability of each op) must be in 0..1")
    std = values.get("mstd", 0.0)
    return RandAugment(magnitude=values.get("m", LEVEL_DENOM), num_layers=int(values.get("n", 2)),
                       magnitude_std=math.inf if std > UNIFORM_ABOVE else std,
                       magnitude_max=values.get("mmax", LEVEL_DENOM) or LEVEL_DENOM,
                       prob=values.get("p", 0.5))


def randaugment_rule(value: Any) -> str | None:
    """The config rule of `data.randaugment`."""
    try:
        parse_randaugment(value)
    except (TypeError, ValueError) as error:
        return str(error)
    return None


randaugment_rule.allowed = (  # type: ignore[attr-defined]
    f"'' (off) or a timm RandAugment string, e.g. '{RANDAUGMENT_EXAMPLE}'")


# --- the ops (jnp; pixels are float32 whole values 0..255) ----------------------------------

def levels(magnitude: Any, sign: Any) -> dict[str, Any]:
    """timm's level functions (`LEVEL_TO_ARG` of the increasing ops): magnitude (0..mmax) and
    sign -> each op's argument. Written as whole numbers over powers of ten, divided exactly
    (`_divided`), so that float32 holds timm's values (computed in doubles) for whole and half
    magnitudes: an enhance factor of 0.73 times 100 is then 73, as in Pillow, not 72.99."""
    factor = jnp.maximum(0.1, _divided(100.0 + sign * magnitude * 9.0, 100.0))
    tenths = _divided(magnitude, LEVEL_DENOM)
    return {"Rotate": sign * magnitude * 3.0,
            "PosterizeIncreasing": 4 - jnp.floor(_divided(magnitude * 4.0, LEVEL_DENOM)
                                                 ).astype(jnp.int32),
            "SolarizeIncreasing": 256 - jnp.minimum(256, jnp.floor(
                _divided(magnitude * 256.0, LEVEL_DENOM))),
            "SolarizeAdd": jnp.minimum(128, jnp.floor(_divided(magnitude * 110.0,
                                                               LEVEL_DENOM))),
            "ColorIncreasing": factor, "ContrastIncreasing": factor,
            "BrightnessIncreasing": factor, "SharpnessIncreasing": factor,
            "ShearX": sign * tenths * 0.3, "ShearY": sign * tenths * 0.3,
            "TranslateXRel": sign * tenths * TRANSLATE_PCT,
            "TranslateYRel": sign * tenths * TRANSLATE_PCT}


def _divided(numerator: Any, denominator: float) -> Any:
    """numerator / denominator, correctly rounded. XLA turns a division by a constant or by
    one scalar broadcast into a multiplication by its rounded reciprocal (x / 100 -> x * 0.01,
    one ulp off); a divisor of the numerator's shape behind a barrier is neither."""
    divisor = jax.lax.optimization_barrier(numerator * 0.0 + denominator)
    return numerator / divisor


def grey(image: Any) -> Any:
    """Pillow's RGB -> L (ITU-R 601-2 luma in its fixed-point arithmetic); (H, W) float32."""
    if image.shape[-1] == 1:
        return image[..., 0]
    rgb = image.astype(jnp.int32)
    return ((rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000)
            >> 16).astype(jnp.float32)


def blend(degenerate: Any, image: Any, factor: Any) -> Any:
    """Pillow's Image.blend (ImageEnhance): degenerate + factor (image - degenerate), cut to
    0..255 and truncated."""
    return jnp.clip(jnp.floor(degenerate + factor * (image - degenerate)), 0.0, 255.0)


def smooth(image: Any) -> Any:
    """Pillow's ImageFilter.SMOOTH (3 x 3, centre 5, others 1, / 13, rounded); the outermost
    rows and columns are kept, as Pillow keeps them."""
    padded = jnp.pad(image, ((1, 1), (1, 1), (0, 0)), mode="edge")
    height, width = image.shape[:2]
    total = sum(padded[i:i + height, j:j + width] for i in range(3) for j in range(3))
    filtered = jnp.floor((total + 4.0 * image) / 13.0 + 0.5)
    border = np.ones((height, width, 1), bool)
    border[1:-1, 1:-1] = False
    return jnp.where(border, image, filtered)


def auto_contrast(image: Any) -> Any:
    """ImageOps.autocontrast per channel: min..max stretched to 0..255, floor((x - lo) 255 /
    (hi - lo)) in integers (Pillow computes it in doubles: where the quotient is a whole
    number it may give one less)."""
    values = image.astype(jnp.int32)
    low = values.min(axis=(0, 1), keepdims=True)
    high = values.max(axis=(0, 1), keepdims=True)
    stretched = ((values - low) * 255) // jnp.maximum(high - low, 1)
    return jnp.where(high > low, stretched, values).astype(jnp.float32)


def equalize(image: Any) -> Any:
    """ImageOps.equalize per channel, in Pillow's integer arithmetic: lut[i] = (step // 2 +
    pixels below i) // step, step = (pixels - the top value's count) // 256; a channel of one
    value or with step 0 is kept."""
    def channel(plane: Any) -> Any:
        values = plane.astype(jnp.int32).ravel()
        histogram = jnp.zeros(256, jnp.int32).at[values].add(1)
        step = (values.size - histogram[values.max()]) // 256
        below = jnp.cumsum(histogram) - histogram
        lut = jnp.clip((step // 2 + below) // jnp.maximum(step, 1), 0, 255)
        kept = (jnp.sum(histogram > 0) <= 1) | (step == 0)
        return jnp.where(kept, plane, lut[values].reshape(plane.shape).astype(jnp.float32))

    return jax.vmap(channel, in_axes=-1, out_axes=-1)(image)


def posterize(image: Any, bits: Any) -> Any:
    """ImageOps.posterize: keep the top `bits` bits."""
    mask = ~((jnp.left_shift(1, 8 - bits)) - 1)
    return jnp.bitwise_and(image.astype(jnp.int32), mask).astype(jnp.float32)


def colour_op(image: Any, op: Any, argument: dict[str, Any]) -> Any:
    """One image (H, W, C) through the colour op of index `op` (a geometric op's index: the
    image unchanged); `argument`: `levels` of this image's draw."""
    def enhance(image: Any, degenerate: Any, factor: Any) -> Any:
        return blend(degenerate, image, factor)

    def contrast(image: Any, argument: dict[str, Any]) -> Any:
        mean = jnp.floor(jnp.mean(grey(image)) + 0.5)
        return enhance(image, jnp.full_like(image, mean), argument["ContrastIncreasing"])

    branches = {
        "AutoContrast": lambda image, argument: auto_contrast(image),
        "Equalize": lambda image, argument: equalize(image),
        "Invert": lambda image, argument: 255.0 - image,
        "PosterizeIncreasing": lambda image, argument: posterize(
            image, argument["PosterizeIncreasing"]),
        "SolarizeIncreasing": lambda image, argument: jnp.where(
            image >= argument["SolarizeIncreasing"], 255.0 - image, image),
        "SolarizeAdd": lambda image, argument: jnp.where(
            image < 128.0, jnp.minimum(255.0, image + argument["SolarizeAdd"]), image),
        "ColorIncreasing": lambda image, argument: enhance(
            image, jnp.broadcast_to(grey(image)[..., None], image.shape),
            argument["ColorIncreasing"]),
        "ContrastIncreasing": contrast,
        "BrightnessIncreasing": lambda image, argument: enhance(
            image, jnp.zeros_like(image), argument["BrightnessIncreasing"]),
        "SharpnessIncreasing": lambda image, argument: enhance(
            image, smooth(image), argument["SharpnessIncreasing"]),
    }
    unchanged = lambda image, argument: image  # a geometric op's index
    return jax.lax.switch(op, [branches.get(name, unchanged) for name in OPS], image, argument)


def geometric_warp(op: Any, argument: dict[str, Any], height: int, width: int) -> Any:
    """The (2, 3) (row, col) sampling map (`jaxtl.data.transforms.warp_batch`) of geometric op
    `op` (identity for a colour op): Pillow's AFFINE data (a, b, c, d, e, f) map an output
    point (x, y) in pixel-edge coordinates to the input (a x + b y + c, d x + e y + f);
    Rotate is Image.rotate's map about the centre."""
    angle = -jnp.deg2rad(argument["Rotate"])
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    cx, cy = width / 2.0, height / 2.0
    one, zero = jnp.ones(()), jnp.zeros(())
    shear_x, shear_y = argument["ShearX"], argument["ShearY"]
    maps = {
        "Rotate": (cos, sin, -cos * cx - sin * cy + cx, -sin, cos, sin * cx - cos * cy + cy),
        "ShearX": (one, shear_x, zero, zero, one, zero),
        "ShearY": (one, zero, zero, shear_y, one, zero),
        "TranslateXRel": (one, zero, argument["TranslateXRel"] * width, zero, one, zero),
        "TranslateYRel": (one, zero, zero, zero, one, argument["TranslateYRel"] * height),
    }
    identity = (one, zero, zero, zero, one, zero)
    table = jnp.asarray([[jnp.asarray(v, jnp.float32) for v in maps.get(name, identity)]
                         for name in OPS])
    a, b, c, d, e, f = table[op]
    # edge coordinates (index + 0.5) on both sides; then (x, y) -> (row, col)
    return jnp.stack([jnp.stack([e, d, f + 0.5 * (d + e) - 0.5]),
                      jnp.stack([b, a, c + 0.5 * (a + b) - 0.5])])


def apply_ops(images: Any, ops: Any, applied: Any, magnitudes: Any, signs: Any, *,
              fill: tuple[float, ...]) -> Any:
    """One RandAugment layer: image i through op `ops[i]` at `magnitudes[i]`, `signs[i]` where
    `applied[i]`. Geometric ops sample bilinearly (Pillow's BILINEAR: edge pixels extend to
    the image's outer edges, `fill` beyond), truncated to whole values as Pillow's are."""
    height, width = images.shape[1:3]
    arguments = jax.vmap(levels)(magnitudes, signs)
    coloured = jax.vmap(colour_op)(images, ops, arguments)
    warps = jax.vmap(lambda op, argument: geometric_warp(op, argument, height, width))(
        ops, arguments)
    background = jnp.asarray(fill, jnp.float32)
    # any affine map (shears too): gathered, not the crop/flip/rotation warp
    moved = jnp.clip(jnp.floor(warp_batch(images - background, warps, max_rotation=None)
                               + background), 0, 255)
    geometric = jnp.isin(ops, jnp.asarray([OPS.index(name) for name in GEOMETRIC]))
    chosen = jnp.where(geometric[:, None, None, None], moved, coloured)
    return jnp.where(applied[:, None, None, None], chosen, images)


# --- random erasing and mixup (normalised images) --------------------------------------------

def erasing_boxes(key: Any, height: int, width: int, probability: float) -> Any:
    """(top, left, box height, box width) of one image's erased box (height 0: none):
    timm's RandomErasing draws, up to ten tries for a box that fits."""
    apply_key, area_key, aspect_key, top_key, left_key = jax.random.split(key, 5)
    area = jax.random.uniform(area_key, (ERASE_TRIES,), minval=ERASE_AREA[0],
                              maxval=ERASE_AREA[1]) * height * width
    aspect = jnp.exp(jax.random.uniform(aspect_key, (ERASE_TRIES,),
                                        minval=math.log(ERASE_ASPECT[0]),
                                        maxval=math.log(ERASE_ASPECT[1])))
    box_h = jnp.round(jnp.sqrt(area * aspect)).astype(jnp.int32)
    box_w = jnp.round(jnp.sqrt(area / aspect)).astype(jnp.int32)
    fits = (box_w < width) & (box_h < height)
    first = jnp.argmax(fits)
    box_h, box_w = box_h[first], box_w[first]
    top = jax.random.randint(top_key, (), 0, height - box_h + 1)
    left = jax.random.randint(left_key, (), 0, width - box_w + 1)
    erased = fits[first] & (jax.random.uniform(apply_key) < probability)
    return jnp.stack([top, left, jnp.where(erased, box_h, 0), jnp.where(erased, box_w, 0)])


def random_erasing(images: Any, key: Any, probability: float) -> Any:
    """(B, H, W, C) normalised images, each with its box (`erasing_boxes`) of N(0, 1) noise."""
    batch, height, width, _ = images.shape
    box_key, noise_key = jax.random.split(key)
    boxes = jax.vmap(lambda k: erasing_boxes(k, height, width, probability))(
        jax.random.split(box_key, batch))
    inside = box_mask(boxes, height, width)
    noise = jax.random.normal(noise_key, images.shape, jnp.float32)
    return jnp.where(inside[..., None], noise, images.astype(jnp.float32))


def box_mask(boxes: Any, height: int, width: int) -> Any:
    """(B, H, W) bool: inside each (top, left, height, width) box."""
    rows = jnp.arange(height)[None, :, None]
    cols = jnp.arange(width)[None, None, :]
    top, left, box_h, box_w = (boxes[:, i, None, None] for i in range(4))
    return (rows >= top) & (rows < top + box_h) & (cols >= left) & (cols < left + box_w)


@dataclasses.dataclass(frozen=True)
class Mixup:
    """timm's Mixup, mode 'batch'."""

    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    prob: float = 1.0
    switch_prob: float = 0.5

    def draw(self, key: Any) -> tuple[Any, Any]:
        """(lam, whether CutMix) of a batch; lam 1: not mixed."""
        mix_key, switch_key, mixup_key, cutmix_key = jax.random.split(key, 4)
        if self.mixup_alpha > 0 and self.cutmix_alpha > 0:
            cutmix = jax.random.uniform(switch_key) < self.switch_prob
        else:
            cutmix = jnp.asarray(self.cutmix_alpha > 0)
        lam_mixup = (jax.random.beta(mixup_key, self.mixup_alpha, self.mixup_alpha)
                     if self.mixup_alpha > 0 else jnp.ones(()))
        lam_cutmix = (jax.random.beta(cutmix_key, self.cutmix_alpha, self.cutmix_alpha)
                      if self.cutmix_alpha > 0 else jnp.ones(()))
        mixed = jax.random.uniform(mix_key) < self.prob
        lam = jnp.where(mixed, jnp.where(cutmix, lam_cutmix, lam_mixup), 1.0)
        return lam.astype(jnp.float32), cutmix & mixed

    def __call__(self, images: Any, labels: Any, valid: Any, key: Any) -> tuple[Any, Mix]:
        """The batch mixed with its flip, and what the loss mixes its targets with."""
        draw_key, box_key = jax.random.split(key)
        lam, cutmix = self.draw(draw_key)
        flipped = jnp.flip(images, 0)
        height, width = images.shape[1:3]
        box = cutmix_box(box_key, lam, height, width)
        inside = box_mask(box[None], height, width)[0][None, :, :, None]
        box_lam = 1.0 - (box[2] * box[3]).astype(jnp.float32) / (height * width)
        cut = jnp.where(inside, flipped, images)
        blended = lam * images + (1.0 - lam) * flipped
        images = jnp.where(cutmix, cut, blended)
        lam = jnp.where(cutmix, box_lam, lam)
        partner_valid = (jnp.ones(images.shape[0], bool) if valid is None
                         else jnp.flip(valid, 0))
        return images, Mix(lam=lam, labels=jnp.flip(labels, 0), valid=partner_valid)


def cutmix_box(key: Any, lam: Any, height: int, width: int) -> Any:
    """timm's rand_bbox: (top, left, height, width) of the box, its sides int(side *
    sqrt(1 - lam)) about a uniform centre, cut at the image's edges."""
    ratio = jnp.sqrt(1.0 - lam)
    cut_h = jnp.floor(height * ratio).astype(jnp.int32)
    cut_w = jnp.floor(width * ratio).astype(jnp.int32)
    y_key, x_key = jax.random.split(key)
    cy = jax.random.randint(y_key, (), 0, height)
    cx = jax.random.randint(x_key, (), 0, width)
    top, bottom = jnp.clip(cy - cut_h // 2, 0, height), jnp.clip(cy + cut_h // 2, 0, height)
    left, right = jnp.clip(cx - cut_w // 2, 0, width), jnp.clip(cx + cut_w // 2, 0, width)
    return jnp.stack([top, left, bottom - top, right - left])


# --- the step's augmentation -------------------------------------------------------------------

AUGMENT_STREAM = 0x61756721  # folded into the step's key: the augmentation's key


def augment_key(step_key: Any) -> Any:
    """The step's augmentation key, apart from its dropout key `step_key` (fold_in(rng, step))."""
    return jax.random.fold_in(step_key, AUGMENT_STREAM)


@dataclasses.dataclass(frozen=True)
class DeviceAugment:
    """The train step's augmentations after the warp: RandAugment on the pixels, then the
    normalisation, random erasing and mixup/cutmix."""

    randaugment: RandAugment | None = None
    random_erasing: float = 0.0
    mixup: Mixup | None = None

    def __call__(self, images: Any, labels: Any, valid: Any, normalise: Any,
                 key: Any) -> tuple[Any, Mix | None]:
        """(B, H, W, C) warped pixels -> (normalised, augmented images; the Mix for the loss,
        None without mixup). `normalise`: the step's normalisation (None: none)."""
        randaugment_key, erasing_key, mixup_key = jax.random.split(key, 3)
        if self.randaugment is not None:
            images = self.randaugment(images, randaugment_key)
        if normalise is not None:
            images = normalise(images)
        if self.random_erasing > 0:
            images = random_erasing(images, erasing_key, self.random_erasing)
        if self.mixup is None:
            return images, None
        return self.mixup(images, labels, valid, mixup_key)


def from_config(config: Any, wire_dtype: str) -> DeviceAugment | None:
    """The device augmentations a config asks for (None: none); `wire_dtype`: the dtype the
    training pixels cross to the device in (RandAugment takes 8-bit images only)."""
    randaugment = parse_randaugment(config.data.randaugment)
    if randaugment is not None:
        if wire_dtype != "uint8":
            raise ConfigError(
                f"config.data.randaugment is {config.data.randaugment!r}, but "
                f"{config.dataset}'s images are {wire_dtype}, not 8-bit: RandAugment's ops "
                f"work on 0..255 pixels; set it to ''")
        fill = tuple(float(min(255, round(255 * mean))) for mean in config.data.mean)
        randaugment = dataclasses.replace(randaugment, fill=fill)
    train = config.train
    mixup = (Mixup(train.mixup_alpha, train.cutmix_alpha, train.mixup_prob,
                   train.mixup_switch_prob)
             if train.mixup_alpha > 0 or train.cutmix_alpha > 0 else None)
    if randaugment is None and not config.data.random_erasing and mixup is None:
        return None
    return DeviceAugment(randaugment, float(config.data.random_erasing), mixup)
