"""Decode -> resize -> augment -> normalise, per image."""

from __future__ import annotations

import dataclasses
import functools
import pickle

import jax
import numpy as np
import pytest
from layouts.bad_files import BAD_KINDS, spoil
from PIL import Image

from jaxtl.core.errors import DataError, UnreadableImage
from jaxtl.data.decoders import ImageFileDecoder, PatchArrayDecoder
from jaxtl.data.eyepacs.graham import GrahamPreprocess, estimate_radius
from jaxtl.data.records import Record
from jaxtl.data.transforms import (
    EvalExample,
    ImageTransform,
    WARP_QUANTUM,
    TrainExample,
    _warp_coordinates,
    bilinear_warp,
    sampling_map,
    warp_batch,
    warp_on_host,
)

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


def test_train_example_is_uint8_pixels_with_int_label(image_path):
    """Pixels leave the worker as uint8 (normalised on the device, in the steps)."""
    out = TrainExample(transform(augment=("flip",)))(Record("x", image_path, 2, "p"),
                                                     np.random.default_rng(0))
    expected = transform(augment=("flip",)).pixels(image_path, np.random.default_rng(0))
    assert out["image"].dtype == np.uint8 and out["label"] == 2
    np.testing.assert_array_equal(out["image"], expected)


def test_unreadable_image_names_the_file(tmp_path):
    broken = tmp_path / "broken.jpeg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(DataError, match="broken.jpeg cannot be read as an image"):
        transform().pixels(str(broken), None)


# --- arrays of any channel count (CoNSeP patches, BigEarthNet bands) ---------------------------


@dataclasses.dataclass(frozen=True)
class ArrayDecoder:
    """Serves one in-memory array whatever the path (a stand-in for a dataset's decoder)."""

    array: np.ndarray
    value_scale: float = 255.0

    @property
    def channels(self) -> int:
        return self.array.shape[-1]

    def decode(self, path: str, resolution: int) -> np.ndarray:
        return self.array

    def __hash__(self) -> int:
        return id(self)


def smooth_rgb(height: int = 40, width: int = 50) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([128 + 100 * np.sin(x / 6.0), 128 + 100 * np.cos(y / 5.0),
                     128 + 60 * np.sin((x + y) / 7.0)], -1).astype(np.uint8)


def array_transform(array, resolution, **kw):
    return ImageTransform(resolution=resolution, channels=array.shape[-1],
                          mean=(0.5,) * array.shape[-1], std=(0.5,) * array.shape[-1],
                          decoder=ArrayDecoder(array), **kw)


@pytest.mark.parametrize("augment", [(), ("crop",), ("flip",), ("rotate",),
                                     ("crop", "flip", "rotate")])
def test_array_path_matches_pillow_on_rgb(augment, tmp_path):
    """The NumPy/SciPy path and the Pillow path (canvas + warp) read the same random numbers
    the same way.

    Upscaling (no antialiasing on either side), compared away from the border where the Pillow
    path fills black and the array path mirrors; the Pillow path resamples twice (the canvas,
    then the warp) and rounds to uint8.
    """
    rgb = smooth_rgb()
    path = tmp_path / "rgb.png"
    Image.fromarray(rgb).save(path)
    settings = dict(augment=augment, rotate_degrees=30, crop_scale_min=0.5)
    arrays = array_transform(rgb, 64, **settings)
    files = ImageTransform(resolution=64, channels=3, mean=(0.5,) * 3, std=(0.5,) * 3,
                           **settings)
    assert files.warps_on_device == bool(augment) and not arrays.warps_on_device
    centre = slice(16, 48)
    for seed in range(4):
        pil = files.pixels(str(path), np.random.default_rng(seed)).astype(float)
        array = arrays.pixels("ignored", np.random.default_rng(seed))
        assert array.dtype == np.float32 and array.shape == (64, 64, 3)
        assert np.abs(pil[centre, centre] - array[centre, centre]).max() < 3.0


def test_the_device_warp_is_the_host_warp(image_path):
    """The train step's `warp_batch` (JAX) samples canvases as `warp_on_host` (SciPy) does,
    for the warps the transform draws (crop, flip, rotation)."""
    t = transform(augment=("crop", "flip", "rotate"), rotate_degrees=30, crop_scale_min=0.5)
    examples = [t.example(image_path, np.random.default_rng(s)) for s in range(6)]
    canvases = np.stack([canvas for canvas, _ in examples])
    warps = np.stack([warp for _, warp in examples])
    assert canvases.dtype == np.uint8 and warps.shape == (6, 2, 3)
    device = np.asarray(jax.jit(warp_batch)(canvases, warps))
    host = np.stack([warp_on_host(c, w) for c, w in examples])
    np.testing.assert_allclose(device, host, atol=1e-3)
    assert len({w.tobytes() for w in warps}) == 6  # every draw a different map
    planes = jax.jit(functools.partial(bilinear_warp, channel_planes=True))  # TPUs' gathers
    np.testing.assert_allclose(np.asarray(planes(canvases, warps)), host, atol=1e-3)


def test_the_device_warp_takes_neighbours_and_weights_from_the_same_rows():
    """Maps whose coordinates fall within float32 rounding of whole numbers (image 2, pixel
    (171, 8) of these: row 142.99998 in float64) once sampled one row off under jit, where
    XLA:CPU computed a coordinate twice, with and without fused multiply-adds; on
    WARP_QUANTUM's grid every copy is exact."""
    rng = np.random.default_rng(0)
    canvases = rng.integers(0, 256, (3, 224, 224, 3)).astype(np.uint8)
    warps = []
    for index in range(3):
        matrix, offset = sampling_map(224, rng.uniform(0, 40), rng.uniform(0, 40),
                                      rng.uniform(160, 224), index % 2 == 0,
                                      rng.uniform(-10, 10))
        warps.append(np.concatenate([matrix, offset[:, None]], 1))
    warps = np.asarray(warps, np.float32)
    host = np.stack([warp_on_host(c, w) for c, w in zip(canvases, warps)])
    for channel_planes in (True, False):
        device = jax.jit(functools.partial(bilinear_warp, channel_planes=channel_planes))(
            canvases, warps)
        np.testing.assert_allclose(np.asarray(device), host, atol=1e-3)


def test_the_warp_is_bilinear_sampling_by_definition():
    """`warp_on_host` against a slow definition: each output pixel's four canvas neighbours
    weighted by distance, edge pixels extended to the canvas edge, zero beyond it."""
    canvas = np.random.default_rng(0).integers(0, 256, (7, 9, 2)).astype(np.uint8)
    angle = np.radians(25.0)
    warp = np.array([[np.cos(angle), -np.sin(angle) * 1.1, 1.3],
                     [np.sin(angle), np.cos(angle) * 1.1, -2.2]], np.float32)
    warp = np.round(warp / WARP_QUANTUM) * WARP_QUANTUM  # the map as sampled, on its grid
    height, width = canvas.shape[:2]
    expected = np.zeros(canvas.shape)
    for r in range(height):
        for c in range(width):
            y = warp[0, 0] * r + warp[0, 1] * c + warp[0, 2]
            x = warp[1, 0] * r + warp[1, 1] * c + warp[1, 2]
            if not (-0.5 <= y <= height - 0.5 and -0.5 <= x <= width - 0.5):
                continue
            y, x = min(max(y, 0), height - 1), min(max(x, 0), width - 1)
            y0, x0 = min(int(y), height - 2), min(int(x), width - 2)
            dy, dx = y - y0, x - x0
            expected[r, c] = ((1 - dy) * (1 - dx) * canvas[y0, x0] + (1 - dy) * dx * canvas[y0, x0 + 1]
                              + dy * (1 - dx) * canvas[y0 + 1, x0] + dy * dx * canvas[y0 + 1, x0 + 1])
    np.testing.assert_allclose(warp_on_host(canvas, warp), expected, atol=1e-3)
    assert (expected == 0).any() and (expected != 0).any()


def test_canvas_of_an_image_stored_at_the_resolution_is_a_slice(tmp_path):
    """Prepared shards store the short side at the resolution: the canvas is cut, not
    resampled, and holds the crop (a crop and flip sample no pixel beyond it)."""
    pixels = np.random.default_rng(3).integers(0, 256, (30, 47, 3)).astype(np.uint8)
    path = tmp_path / "stored.png"
    Image.fromarray(pixels).save(path)
    t = transform(augment=("crop", "flip"), crop_scale_min=0.5)
    starts = set()
    for seed in range(12):
        canvas, warp = t.example(str(path), np.random.default_rng(seed))
        offsets = [x for x in range(47 - 30 + 1)
                   if np.array_equal(canvas, pixels[:, x:x + 30])]
        assert offsets, seed
        starts.add(offsets[0])
        row, col, inside = _warp_coordinates(np, canvas.shape, warp)
        assert inside.all()
    assert len(starts) > 3  # the canvas follows the crop along the long side


@pytest.mark.parametrize("channels", [1, 3, 10, 12])
def test_any_channel_count_keeps_each_channel(channels):
    planes = np.arange(1, channels + 1, dtype=np.float32) * 100.0
    array = np.broadcast_to(planes, (30, 30, channels)).copy()
    t = array_transform(array, 20, augment=("crop", "flip", "rotate"), rotate_degrees=45)
    out = t.pixels("ignored", np.random.default_rng(0))
    assert out.shape == (20, 20, channels)
    np.testing.assert_allclose(out, np.broadcast_to(planes, out.shape), rtol=1e-5)


def test_same_size_without_augmentation_is_exact_and_flip_mirrors():
    array = np.random.default_rng(0).uniform(0, 5000, (16, 16, 10)).astype(np.float32)
    np.testing.assert_array_equal(array_transform(array, 16).pixels("x", None), array)
    t = array_transform(array, 16, augment=("flip",))
    outputs = [t.pixels("x", np.random.default_rng(s)) for s in range(10)]
    mirrored = [np.allclose(o, array[:, ::-1], atol=1e-3) for o in outputs]
    unchanged = [np.allclose(o, array, atol=1e-3) for o in outputs]
    assert all(m or u for m, u in zip(mirrored, unchanged)) and any(mirrored) and any(unchanged)


def test_downscaling_is_antialiased():
    """A 1-pixel checkerboard shrunk 4x becomes its mean grey, not an aliasing pattern."""
    board = ((np.indices((64, 64)).sum(0) % 2) * 255.0).astype(np.float32)[..., None]
    out = array_transform(board, 16).pixels("x", None)
    assert abs(out.mean() - 127.5) < 3 and out.std() < 12


def test_normalisation_uses_the_decoders_value_scale():
    array = np.full((8, 8, 2), 5000.0, np.float32)
    t = ImageTransform(resolution=8, channels=2, mean=(0.4, 0.5), std=(0.1, 0.2),
                       decoder=ArrayDecoder(array, value_scale=10000.0))
    np.testing.assert_allclose(t.normalise(t.pixels("x", None))[0, 0], [1.0, 0.0], atol=1e-6)


def test_channel_mismatches_are_refused():
    with pytest.raises(ValueError, match="decoder gives 3 channels"):
        ImageTransform(resolution=8, channels=1, mean=(0.5,), std=(0.5,),
                       decoder=ArrayDecoder(np.zeros((4, 4, 3))))
    with pytest.raises(ValueError, match="one value per channel"):
        ImageTransform(resolution=8, channels=3, mean=(0.5,), std=(0.5,))


def test_patch_array_decoder_reads_rows_and_converts_to_grey_like_pillow(tmp_path):
    patches = np.random.default_rng(1).integers(0, 256, (5, 6, 6, 3), dtype=np.uint8)
    np.save(tmp_path / "p.npy", patches)
    np.testing.assert_array_equal(PatchArrayDecoder(3).decode(f"{tmp_path}/p.npy#3", 6),
                                  patches[3])
    grey = PatchArrayDecoder(1).decode(f"{tmp_path}/p.npy#2", 6)
    np.testing.assert_array_equal(grey[..., 0], np.asarray(Image.fromarray(patches[2])
                                                           .convert("L")))
    with pytest.raises(DataError, match="holds only 5 patches"):
        PatchArrayDecoder(3).decode(f"{tmp_path}/p.npy#5", 6)
    with pytest.raises(DataError, match="does not name a patch"):
        PatchArrayDecoder(3).decode(f"{tmp_path}/p.npy", 6)


def test_transforms_pickle_for_worker_processes(tmp_path):
    from jaxtl.data.bigearthnet.bands import BandStackDecoder
    from jaxtl.data.eyepacs.graham import GrahamPreprocess

    for decoder in (ImageFileDecoder(3, GrahamPreprocess()), PatchArrayDecoder(1),
                    BandStackDecoder(("B02", "B8A", "B01"), "bicubic")):
        t = ImageTransform(resolution=8, channels=decoder.channels,
                           mean=(0.5,) * decoder.channels, std=(0.5,) * decoder.channels,
                           augment=("flip",), decoder=decoder)
        assert pickle.loads(pickle.dumps(TrainExample(t))) == TrainExample(t)


# --- EyePACS: the winning entry's preprocessing ------------------------------------------------


def fundus(size=(150, 200), radius=60, dot_offset=30):
    """An orange disc of `radius` on black, with a dark dot `dot_offset` px right of centre."""
    rows, cols = np.indices(size)
    cy, cx = size[0] // 2, size[1] // 2
    pixels = np.zeros((*size, 3), np.uint8)
    pixels[(rows - cy) ** 2 + (cols - cx) ** 2 <= radius ** 2] = (200, 100, 40)
    pixels[(rows - cy) ** 2 + (cols - cx - dot_offset) ** 2 <= 9] = (60, 20, 10)
    return pixels


def test_graham_radius_is_estimated_from_the_middle_row():
    assert estimate_radius(fundus(radius=60)) == pytest.approx(60.5, abs=1)
    assert estimate_radius(np.zeros((20, 40, 3), np.uint8)) == 20.0  # no eye: half the width


def test_graham_scales_the_eye_subtracts_the_blur_and_masks(tmp_path):
    path = tmp_path / "eye.png"
    Image.fromarray(fundus(radius=60, dot_offset=30)).save(path)
    t = ImageTransform(resolution=64, channels=3, mean=MEAN, std=STD,
                       decoder=ImageFileDecoder(3, GrahamPreprocess()))
    out = t.pixels(str(path), None).astype(int)
    assert out.shape == (64, 64, 3)
    rows, cols = np.indices((64, 64))
    distance = np.hypot(rows - 31.5, cols - 31.5)
    assert (out[distance > 0.9 * 32 + 0.5] == 128).all()  # grey outside 0.9 r
    flat = (distance < 10)
    assert np.abs(out[flat] - 128).max() <= 3  # a uniform area minus its blur is grey
    # The dot, half the radius right of the centre, lands half the new radius (16 px) right.
    darkest = np.unravel_index(np.argmin(out.sum(-1)), (64, 64))
    assert abs(darkest[0] - 31.5) <= 1.5 and abs(darkest[1] - (31.5 + 16)) <= 1.5
    assert out[darkest].sum() < 3 * 128 - 150  # and is amplified (4x its contrast, clipped)


# --- unreadable images --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", BAD_KINDS)
@pytest.mark.parametrize("suffix", [".jpeg", ".png"])
def test_an_unreadable_image_stops_with_its_record_or_is_skipped(tmp_path, kind, suffix):
    path = tmp_path / f"bad{suffix}"
    Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(path)
    spoil(path, kind)
    record = Record("17_left", str(path), 3, "17")
    rng = np.random.default_rng(0)
    with pytest.raises(UnreadableImage, match=r"bad.* cannot be read as an image .*image "
                       r"17_left of patient 17, train split.*python -m jaxtl.commands.verify.*"
                       r"bad_images=skip") as error:
        TrainExample(transform())(record, rng)
    assert (error.value.image_id, error.value.path) == ("17_left", str(path))
    skipped = TrainExample(transform(), skip_bad_images=True)(record, rng)
    assert not skipped["valid"] and skipped["label"] == 3
    np.testing.assert_array_equal(skipped["image"], transform().blank())
    with pytest.raises(UnreadableImage, match="17_left"):
        EvalExample(transform())((record, 5))
    excluded = EvalExample(transform(), skip_bad_images=True)((record, 5))
    assert excluded["mask"] and not excluded["valid"] and excluded["index"] == 5


def test_an_unreadable_image_error_survives_pickling_into_grain_workers(tmp_path):
    error = UnreadableImage("x cannot be read", "17_left", "/data/x.jpeg")
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.image_id, copy.path) == (str(error), "17_left", "/data/x.jpeg")
    assert isinstance(copy, DataError)
