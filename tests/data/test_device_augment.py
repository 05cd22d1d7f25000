"""The train step's device augmentations (jaxtl/data/device_augment.py) against Pillow (the ops
timm's RandAugment calls, written out here as timm's auto_augment.py calls them) and against
timm's formulas for the draws, random erasing's boxes and mixup/cutmix."""

from __future__ import annotations

import functools
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import xla_flags
from PIL import Image, ImageEnhance, ImageOps
from scipy import stats

from jaxtl.core.errors import ConfigError
from jaxtl.data import device_augment as augment
from jaxtl.data.device_augment import OPS

FILL = (124, 116, 104)  # timm's img_mean of ImageNet's mean: round(255 * mean)
BILINEAR = Image.Resampling.BILINEAR


def _images() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:23, 0:31]
    smooth = np.stack([(cols * 8) % 256, (rows * 11) % 256, ((rows + cols) * 5) % 256], -1)
    return {"noise": rng.integers(0, 256, (23, 31, 3)).astype(np.uint8),
            "smooth": smooth.astype(np.uint8),
            # a narrow range (autocontrast stretches it) and a histogram with a heavy top bin
            "narrow": rng.integers(60, 140, (23, 31, 3)).astype(np.uint8),
            "heavy": np.where(rng.uniform(size=(23, 31, 3)) < 0.7, 250,
                              rng.integers(0, 256, (23, 31, 3))).astype(np.uint8),
            "grey": rng.integers(0, 256, (23, 31, 1)).astype(np.uint8)}


IMAGES = _images()


def timm_arguments(magnitude: float, negate: bool) -> dict[str, float]:
    """timm's LEVEL_TO_ARG of the increasing ops (auto_augment.py), `negate` for
    _randomly_negate."""
    sign = -1.0 if negate else 1.0
    level = magnitude / 10.0
    enhance = max(0.1, 1.0 + sign * level * 0.9)
    return {"Rotate": sign * level * 30.0, "PosterizeIncreasing": 4 - int(level * 4),
            "SolarizeIncreasing": 256 - min(256, int(level * 256)),
            "SolarizeAdd": min(128, int(level * 110)), "ColorIncreasing": enhance,
            "ContrastIncreasing": enhance, "BrightnessIncreasing": enhance,
            "SharpnessIncreasing": enhance, "ShearX": sign * level * 0.3,
            "ShearY": sign * level * 0.3, "TranslateXRel": sign * level * 0.45,
            "TranslateYRel": sign * level * 0.45}


def pillow_op(name: str, image: Image.Image, argument: float | None) -> Image.Image:
    """The op as timm's auto_augment.py applies it to a PIL image (resample BILINEAR)."""
    width, height = image.size
    affine = {"ShearX": (1, argument, 0, 0, 1, 0), "ShearY": (1, 0, 0, argument, 1, 0),
              "TranslateXRel": (1, 0, (argument or 0) * width, 0, 1, 0),
              "TranslateYRel": (1, 0, 0, 0, 1, (argument or 0) * height)}
    fill = FILL if image.mode == "RGB" else FILL[0]
    if name in affine:
        return image.transform(image.size, Image.AFFINE, affine[name], resample=BILINEAR,
                               fillcolor=fill)
    if name == "Rotate":
        return image.rotate(argument, resample=BILINEAR, fillcolor=fill)
    if name == "SolarizeAdd":
        lut = [min(255, i + int(argument)) if i < 128 else i for i in range(256)]
        return image.point(lut * len(image.getbands()))
    enhancers = {"ColorIncreasing": ImageEnhance.Color, "ContrastIncreasing":
                 ImageEnhance.Contrast, "BrightnessIncreasing": ImageEnhance.Brightness,
                 "SharpnessIncreasing": ImageEnhance.Sharpness}
    if name in enhancers:
        return enhancers[name](image).enhance(argument)
    return {"AutoContrast": lambda: ImageOps.autocontrast(image),
            "Equalize": lambda: ImageOps.equalize(image),
            "Invert": lambda: ImageOps.invert(image),
            "PosterizeIncreasing": lambda: ImageOps.posterize(image, int(argument)),
            "SolarizeIncreasing": lambda: ImageOps.solarize(image, argument)}[name]()


MAGNITUDES = (3.0, 9.0)
CASES = [(name, magnitude, negate) for name in OPS for magnitude in MAGNITUDES
         for negate in (False, True)]


@jax.jit
def _through_ops(images: jax.Array, ops: jax.Array, magnitudes: jax.Array,
                 signs: jax.Array) -> jax.Array:
    fill = FILL if images.shape[-1] == 3 else FILL[:1]
    return augment.apply_ops(images, ops, jnp.ones(ops.shape, bool), magnitudes, signs,
                             fill=tuple(map(float, fill)))


@functools.cache
def ours(kind: str) -> dict[tuple[str, float, bool], np.ndarray]:
    """IMAGES[kind] through every op of CASES, in one batch (one compilation per shape)."""
    image = IMAGES[kind]
    out = _through_ops(jnp.asarray(np.repeat(image[None], len(CASES), 0), jnp.float32),
                       jnp.asarray([OPS.index(name) for name, _, _ in CASES]),
                       jnp.asarray([magnitude for _, magnitude, _ in CASES], jnp.float32),
                       jnp.asarray([-1.0 if negate else 1.0 for _, _, negate in CASES],
                                   jnp.float32))
    return dict(zip(CASES, np.asarray(out)))


def pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)


def as_array(image: Image.Image) -> np.ndarray:
    array = np.asarray(image, np.float32)
    return array[..., None] if array.ndim == 2 else array


# Colour ops are Pillow's integer arithmetic: exact. Geometric ops: the same bilinear map and
# truncation as Pillow's BILINEAR; their coefficients are rounded to the warp's 2^-12 grid
# (jaxtl.data.transforms.WARP_QUANTUM) and summed in another order, so a value a hair from a
# whole number may land one below or above Pillow's.
GEOMETRIC_MAX, GEOMETRIC_MEAN = 2.0, {"noise": 0.3, "smooth": 0.05, "narrow": 0.15,
                                      "heavy": 0.3, "grey": 0.3}


def autocontrast(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ImageOps.autocontrast in exact integer arithmetic, floor((x - lo) 255 / (hi - lo)) per
    channel, and where that quotient is a whole number (Pillow computes it in doubles, which
    may fall a hair below it there and truncate to one less)."""
    values = image.astype(np.int64)
    low, high = values.min(axis=(0, 1)), values.max(axis=(0, 1))
    span = np.maximum(high - low, 1)
    exact = ((values - low) * 255) // span
    return np.where(high > low, exact, values), ((values - low) * 255) % span == 0


@pytest.mark.parametrize("name", OPS)
def test_each_op_matches_pillow(name):
    for kind, image in IMAGES.items():
        for magnitude in MAGNITUDES:
            for negate in (False, True):
                argument = timm_arguments(magnitude, negate).get(name)
                expected = as_array(pillow_op(name, pil(image), argument))
                result = ours(kind)[name, magnitude, negate]
                difference = np.abs(result - expected)
                where = f"{name} {kind} m{magnitude} negate={negate}"
                if name in augment.GEOMETRIC:
                    assert difference.max() <= GEOMETRIC_MAX, where
                    assert difference.mean() <= GEOMETRIC_MEAN[kind], where
                elif name == "AutoContrast":
                    exact, whole = autocontrast(image)
                    np.testing.assert_array_equal(result, exact, err_msg=where)
                    assert np.all((difference == 0) | (whole & (difference == 1))), where
                else:
                    assert difference.max() == 0, where


def test_levels_are_timms():
    """Whole and half magnitudes give timm's arguments of the colour ops as float32 holds them
    (a blend truncates: 0.73 x 100 must be 73, not 72.99); the others within 1e-5."""
    for magnitude in [m / 2 for m in range(21)] + [0.4, 7.3]:
        for negate in (False, True):
            levels = augment.levels(jnp.float32(magnitude),
                                    jnp.float32(-1.0 if negate else 1.0))
            for name, expected in timm_arguments(magnitude, negate).items():
                got = np.asarray(levels[name])
                if magnitude * 2 == int(magnitude * 2) and name not in augment.GEOMETRIC:
                    assert got == np.float32(expected), (name, magnitude, negate)
                else:
                    assert float(got) == pytest.approx(expected, abs=1e-5), name


def test_parse_randaugment():
    parsed = augment.parse_randaugment("rand-m9-mstd0.5-inc1")
    assert (parsed.magnitude, parsed.num_layers, parsed.magnitude_std, parsed.prob,
            parsed.magnitude_max) == (9, 2, 0.5, 0.5, 10)
    parsed = augment.parse_randaugment("rand-n3-m7-mstd101-mmax12-p0.3-inc1")
    assert (parsed.magnitude, parsed.num_layers, parsed.magnitude_std, parsed.prob,
            parsed.magnitude_max) == (7, 3, math.inf, 0.3, 12)
    assert augment.parse_randaugment("") is None
    for text, message in [("rand-m9", "add '-inc1'"), ("rand-m9-w0-inc1", "unknown field 'w0'"),
                          ("auto-m9-inc1", "starts with 'rand-'"),
                          ("rand-m9.5-inc1", "whole number"), ("rand-n0-inc1", "at least 1"),
                          ("rand-p2-inc1", "0..1"), (3, "expected ''")]:
        with pytest.raises((ValueError, TypeError), match=message):
            augment.parse_randaugment(text)
        assert message in augment.randaugment_rule(text)


def test_draws_follow_timms_distributions():
    policy = augment.RandAugment(magnitude=9, magnitude_std=0.5, prob=0.5)
    keys = jax.random.split(jax.random.PRNGKey(1), 20000)
    op, applied, magnitude, sign = map(np.asarray, jax.jit(jax.vmap(policy.draw))(keys))
    counts = np.bincount(op, minlength=len(OPS))
    assert stats.chisquare(counts).pvalue > 1e-3  # uniform over the 15 ops
    assert applied.mean() == pytest.approx(0.5, abs=0.02)
    assert np.mean(sign > 0) == pytest.approx(0.5, abs=0.02)
    # N(9, 0.5) clipped to 0..10: E min(X, 10) = mu - sigma (phi(b) - b P(Z > b)), b = 2
    expected = 9 - 0.5 * (stats.norm.pdf(2) - 2 * stats.norm.sf(2))
    assert magnitude.mean() == pytest.approx(expected, abs=0.02) and magnitude.max() <= 10
    assert np.mean(magnitude == 10) == pytest.approx(stats.norm.sf(2), abs=0.01)
    uniform = augment.RandAugment(magnitude=9, magnitude_std=math.inf)
    magnitude = np.asarray(jax.jit(jax.vmap(uniform.draw))(keys)[2])
    assert stats.kstest(magnitude, stats.uniform(0, 9).cdf).pvalue > 1e-3


def test_randaugment_is_per_example_and_seeded():
    policy = augment.RandAugment(magnitude=9, magnitude_std=0.5, prob=1.0, num_layers=1)
    batch = jnp.asarray(np.repeat(IMAGES["smooth"][None], 6, axis=0), jnp.float32)
    augmented = jax.jit(policy.__call__)  # one compilation for both calls
    first = np.asarray(augmented(batch, jax.random.PRNGKey(0)))
    again = np.asarray(augmented(batch, jax.random.PRNGKey(0)))
    np.testing.assert_array_equal(first, again)
    assert len({image.tobytes() for image in first}) > 1  # each image draws its own ops
    assert np.all(first == np.round(first)) and first.min() >= 0 and first.max() <= 255
    off = augment.RandAugment(prob=0.0)
    np.testing.assert_array_equal(np.asarray(jax.jit(off.__call__)(batch, jax.random.PRNGKey(0))),
                                  batch)


def test_a_layer_applies_each_images_own_op():
    """A batch through one layer is each image through its op alone."""
    images = jnp.asarray(np.stack([IMAGES["noise"], IMAGES["smooth"], IMAGES["narrow"]]),
                         jnp.float32)
    ops, applied = jnp.asarray([OPS.index("Rotate"), OPS.index("Equalize"), 0]), \
        jnp.asarray([True, True, False])
    magnitudes, signs = jnp.asarray([9.0, 3.0, 5.0]), jnp.asarray([1.0, -1.0, 1.0])
    layer = jax.jit(functools.partial(augment.apply_ops, fill=FILL))
    batch = np.asarray(layer(images, ops, applied, magnitudes, signs))
    for i in range(2):
        alone = layer(images[i:i + 1], ops[i:i + 1], applied[i:i + 1], magnitudes[i:i + 1],
                      signs[i:i + 1])
        np.testing.assert_array_equal(batch[i], np.asarray(alone[0]))
    np.testing.assert_array_equal(batch[2], images[2])


# --- random erasing ------------------------------------------------------------------------------

def test_erasing_boxes_follow_timms_random_erasing():
    height, width = 40, 60
    keys = jax.random.split(jax.random.PRNGKey(2), 4000)
    boxes = np.asarray(jax.jit(jax.vmap(
        lambda k: augment.erasing_boxes(k, height, width, 0.25)))(keys))
    top, left, box_h, box_w = boxes.T
    erased = box_h > 0
    assert erased.mean() == pytest.approx(0.25, abs=0.025)
    assert np.all((top + box_h <= height) & (left + box_w <= width) & (top >= 0) & (left >= 0))
    assert np.all((box_h[erased] < height) & (box_w[erased] < width))
    # h = round(sqrt(A r)), w = round(sqrt(A / r)): A and r from h and w within the rounding
    h, w = box_h[erased].astype(float), box_w[erased].astype(float)
    area = h * w / (height * width)
    assert area.min() >= 0.02 * 0.7 and area.max() <= (1 / 3) * 1.3
    aspect = h / w
    assert aspect.min() >= 0.3 * 0.7 and aspect.max() <= (1 / 0.3) * 1.3
    assert np.median(area) == pytest.approx((0.02 + 1 / 3) / 2, abs=0.03)
    # the draws of timm's formula, for the boxes that fit on the first try
    rng = np.random.default_rng(0)
    target = rng.uniform(0.02, 1 / 3, 20000) * height * width
    ratio = np.exp(rng.uniform(math.log(0.3), math.log(1 / 0.3), 20000))
    sim_h, sim_w = np.round(np.sqrt(target * ratio)), np.round(np.sqrt(target / ratio))
    fits = (sim_h < height) & (sim_w < width)
    assert stats.ks_2samp(h * w, (sim_h * sim_w)[fits]).pvalue > 1e-3


def test_random_erasing_replaces_one_box_with_normal_noise():
    images = jnp.full((64, 20, 30, 3), 7.0)
    erase = jax.jit(augment.random_erasing)  # the probability traced: one compile for both
    out = np.asarray(erase(images, jax.random.PRNGKey(3), 1.0))
    changed = np.any(out != 7.0, axis=-1)
    noise = []
    for image, mask in zip(out, changed):
        rows, cols = np.nonzero(mask)
        assert rows.size > 0
        box = np.zeros_like(mask)
        box[rows.min():rows.max() + 1, cols.min():cols.max() + 1] = True
        np.testing.assert_array_equal(mask, box)  # one rectangle
        noise.append(image[mask].ravel())
    noise = np.concatenate(noise)
    assert stats.kstest(noise, "norm").pvalue > 1e-3
    untouched = erase(images, jax.random.PRNGKey(3), 0.0)
    np.testing.assert_array_equal(np.asarray(untouched), np.asarray(images))


# --- mixup and cutmix ----------------------------------------------------------------------------

def _distinct_images(batch: int, height: int = 16, width: int = 20) -> jax.Array:
    """Image i holds the value i everywhere: each pixel says which image it came from."""
    return jnp.broadcast_to(jnp.arange(batch, dtype=jnp.float32)[:, None, None, None],
                            (batch, height, width, 3))


def test_mixup_blends_each_image_with_its_partner_in_the_flipped_batch():
    mixup = augment.Mixup(mixup_alpha=0.4)
    images, labels = _distinct_images(6), jnp.arange(6)
    out, mix = mixup(images, labels, jnp.ones(6, bool), jax.random.PRNGKey(4))
    lam = float(mix.lam)
    expected = lam * np.arange(6) + (1 - lam) * np.arange(6)[::-1]
    np.testing.assert_allclose(np.asarray(out)[:, 0, 0, 0], expected, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(mix.labels), np.arange(6)[::-1])


def test_mixup_lam_is_beta_and_the_probabilities_hold():
    keys = jax.random.split(jax.random.PRNGKey(5), 4000)
    lam, cutmix = map(np.asarray, jax.jit(jax.vmap(augment.Mixup(mixup_alpha=0.8).draw))(keys))
    assert stats.kstest(lam, stats.beta(0.8, 0.8).cdf).pvalue > 1e-3 and not cutmix.any()
    both = augment.Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, prob=0.6, switch_prob=0.3)
    lam, cutmix = map(np.asarray, jax.jit(jax.vmap(both.draw))(keys))
    mixed = lam < 1
    assert mixed.mean() == pytest.approx(0.6, abs=0.03)
    assert cutmix[mixed].mean() == pytest.approx(0.3, abs=0.03)
    assert stats.kstest(lam[cutmix], stats.uniform.cdf).pvalue > 1e-3  # Beta(1, 1)


def test_cutmix_pastes_the_partners_box_and_lam_is_its_area():
    height, width = 16, 20
    mixup = augment.Mixup(cutmix_alpha=1.0)
    images = _distinct_images(4, height, width)
    mixed = jax.jit(lambda key: mixup(images, jnp.arange(4), jnp.ones(4, bool), key))
    for seed in range(20):
        out, mix = mixed(jax.random.PRNGKey(seed))
        out = np.asarray(out)[..., 0]
        from_partner = out[0] == 3  # image 0's partner is image 3
        assert np.all((out[0] == 0) | from_partner)
        rows, cols = np.nonzero(from_partner)
        if rows.size:
            box = np.zeros_like(from_partner)
            box[rows.min():rows.max() + 1, cols.min():cols.max() + 1] = True
            np.testing.assert_array_equal(from_partner, box)
        assert float(mix.lam) == pytest.approx(1 - from_partner.mean(), abs=1e-6)
        for i in range(1, 4):  # the same box in every image
            np.testing.assert_array_equal(out[i] == 3 - i, from_partner)


def test_cutmix_box_is_timms_rand_bbox():
    """Sides 2 * (int(side * sqrt(1 - lam)) // 2) about a centre drawn in the image, cut at
    its edges (timm's rand_bbox)."""
    height, width, lam = 30, 40, 0.64
    cut_h, cut_w = int(height * math.sqrt(1 - lam)), int(width * math.sqrt(1 - lam))
    keys = jax.random.split(jax.random.PRNGKey(6), 3000)
    boxes = np.asarray(jax.jit(jax.vmap(
        lambda k: augment.cutmix_box(k, lam, height, width)))(keys))
    top, left, box_h, box_w = boxes.T
    centre_y = np.where(top > 0, top + cut_h // 2, top + box_h - cut_h // 2)
    centre_x = np.where(left > 0, left + cut_w // 2, left + box_w - cut_w // 2)
    np.testing.assert_array_equal(box_h, np.clip(centre_y + cut_h // 2, 0, height)
                                  - np.clip(centre_y - cut_h // 2, 0, height))
    np.testing.assert_array_equal(box_w, np.clip(centre_x + cut_w // 2, 0, width)
                                  - np.clip(centre_x - cut_w // 2, 0, width))
    assert stats.chisquare(np.bincount(centre_y, minlength=height)).pvalue > 1e-3
    assert centre_x.min() >= 0 and centre_x.max() < width


# --- the step's augmentation from a config --------------------------------------------------------

def _config(**values):
    import ml_collections

    config = ml_collections.ConfigDict({
        "dataset": "eyepacs",
        "data": {"randaugment": "", "random_erasing": 0.0, "mean": (0.485, 0.456, 0.406)},
        "train": {"mixup_alpha": 0.0, "cutmix_alpha": 0.0, "mixup_prob": 1.0,
                  "mixup_switch_prob": 0.5}})
    for key, value in values.items():
        section, name = key.split("__")
        config[section][name] = value
    return config


def test_from_config():
    assert augment.from_config(_config(), "uint8") is None
    built = augment.from_config(_config(data__randaugment="rand-m9-mstd0.5-inc1",
                                         data__random_erasing=0.25, train__cutmix_alpha=1.0),
                                "uint8")
    assert built.randaugment.fill == FILL and built.random_erasing == 0.25
    assert built.mixup == augment.Mixup(0.0, 1.0, 1.0, 0.5)
    with pytest.raises(ConfigError, match="not 8-bit"):
        augment.from_config(_config(data__randaugment="rand-m9-inc1"), "uint16")


# A run with every device augmentation on resumes bitwise after kill -9 and SIGTERM:
# tests/core/test_preemption.py.


SHARDED = """
import json, jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtl.data import device_augment as augment
built = augment.DeviceAugment(augment.parse_randaugment("rand-m9-n1-mstd0.5-inc1"), 0.5,
                              augment.Mixup(0.8, 1.0))
rng = np.random.default_rng(0)
images = rng.integers(0, 256, (8, 12, 12, 3)).astype(np.uint8)
labels, valid = np.arange(8, dtype=np.int32), np.arange(8) != 2
# traced once; compiled for the shardings of the arguments each call commits
step = jax.jit(lambda i, l, v, k: built(i, l, v, lambda x: x / 255.0, k))
def run(devices, seeds):
    mesh = Mesh(np.asarray(devices), ("data",))
    data = NamedSharding(mesh, PartitionSpec("data"))
    batch = [jax.device_put(array, data) for array in (images, labels, valid)]
    outputs = [step(*batch, jax.device_put(jax.random.PRNGKey(seed),
                                           NamedSharding(mesh, PartitionSpec())))
               for seed in seeds]
    return [(np.asarray(out).tolist(), float(mix.lam), np.asarray(mix.valid).tolist())
            for out, mix in outputs]
first, again, other = run(jax.devices()[:1], (3, 3, 4))
print(json.dumps({"devices": len(jax.devices()), "same": run(jax.devices(), (3,))[0] == first,
                  "seeded": first == again and first[0] != other[0],
                  "partner_valid": first[2]}))
"""


@pytest.mark.slow
def test_one_and_four_devices_draw_the_same_augmentations_seeded_by_the_key_only():
    """The draws come from the global batch's keys: a batch sharded over four devices is
    augmented as on one, to the bit; the same key gives the same batch, another key another
    (one compiled step for both checks: it takes most of this test's time)."""
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, XLA_FLAGS=xla_flags(4, fast=False),
               JAX_PLATFORMS="cpu", PYTHONPATH=str(pathlib.Path(__file__).parents[2]))
    result = subprocess.run([sys.executable, "-c", SHARDED], env=env, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "devices": 4, "same": True, "seeded": True,
        "partner_valid": [True] * 5 + [False] + [True] * 2}  # `valid` (image 2 not) flipped
