"""Decode -> resize -> augment -> normalise, per image."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from jaxtl.data.records import Record
from jaxtl.data.transforms import EvalExample, ImageTransform, TrainExample
from jaxtl.errors import DataError

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)


@pytest.fixture
def image_path(tmp_path):
    pixels = np.zeros((60, 80, 3), np.uint8)
    pixels[:, :40] = (200, 100, 50)  # left half coloured, right half black
    path = tmp_path / "x.png"  # lossless, so pixel values can be checked exactly
    Image.fromarray(pixels).save(path)
    return str(path)


def transform(**kw):
    return ImageTransform(resolution=30, channels=3, mean=MEAN, std=STD, **kw)


def test_centre_square_crop_resized_and_normalised_by_formula(image_path):
    pixels = transform().pixels(image_path, None)
    assert pixels.shape == (30, 30, 3) and pixels.dtype == np.uint8
    # The centre 60x60 square of an 80x60 image spans columns 10..70: left 30 coloured.
    assert tuple(pixels[15, 2]) == (200, 100, 50) and tuple(pixels[15, 28]) == (0, 0, 0)
    normalised = transform().normalise(pixels)
    expected = (np.array([200, 100, 50]) / 255.0 - np.array(MEAN)) / np.array(STD)
    np.testing.assert_allclose(normalised[15, 2], expected, rtol=1e-5)


def test_grayscale_gives_one_channel(image_path):
    t = ImageTransform(resolution=16, channels=1, mean=(0.5,), std=(0.5,))
    assert t.pixels(image_path, None).shape == (16, 16, 1)


def test_augmentation_is_a_function_of_the_generator(image_path):
    t = transform(augment=("crop", "flip", "rotate"), rotate_degrees=30)
    a = t.pixels(image_path, np.random.default_rng(5))
    b = t.pixels(image_path, np.random.default_rng(5))
    others = [t.pixels(image_path, np.random.default_rng(s)) for s in range(6, 12)]
    np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, o) for o in others)


def test_flip_mirrors_the_image(image_path):
    t = transform(augment=("flip",))
    seen = {tuple(t.pixels(image_path, np.random.default_rng(s))[15, 2]) for s in range(20)}
    assert seen == {(200, 100, 50), (0, 0, 0)}  # some flipped, some not


def test_crop_zooms_in(image_path):
    t = transform(augment=("crop",), crop_scale_min=0.25)
    crops = [t.pixels(image_path, np.random.default_rng(s)) for s in range(20)]
    coloured_share = [np.mean(c[..., 0] > 100) for c in crops]
    assert min(coloured_share) < 0.4 or max(coloured_share) > 0.6


def test_no_augmentation_without_generator(image_path):
    t = transform(augment=("crop", "flip", "rotate"))
    np.testing.assert_array_equal(t.pixels(image_path, None), transform().pixels(image_path, None))


def test_eval_example_marks_padding(image_path):
    example = EvalExample(transform())
    real = example((Record("x", image_path, 3, "p"), 7))
    pad = example((None, -1))
    assert (int(real["label"]), int(real["index"]), bool(real["mask"])) == (3, 7, True)
    assert (int(pad["index"]), bool(pad["mask"])) == (-1, False)
    assert pad["image"].shape == real["image"].shape == (30, 30, 3)


def test_train_example_is_float32_with_int_label(image_path):
    out = TrainExample(transform(augment=("flip",)))(Record("x", image_path, 2, "p"),
                                                     np.random.default_rng(0))
    assert out["image"].dtype == np.float32 and out["label"] == 2


def test_unreadable_image_names_the_file(tmp_path):
    broken = tmp_path / "broken.jpeg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(DataError, match="broken.jpeg cannot be read as an image"):
        transform().pixels(str(broken), None)
