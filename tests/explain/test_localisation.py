"""The pointing game and mass inside against hand-computed cases, and the geometry from an
image file to the model's input through the real evaluation transform."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from jaxtl.data.records import Record
from jaxtl.data.regions import Box
from jaxtl.data.transforms import ImageTransform
from jaxtl.explain import localisation


def test_pointing_game_by_hand():
    """A 10 x 10 map on a 10 px input (cells are pixels), one box covering columns 2..3 and
    rows 6..8 (x 2..4, y 6..9)."""
    boxes = [Box(2.0, 6.0, 2.0, 3.0)]
    attribution = np.zeros((10, 10), np.float32)
    attribution[7, 3] = 1.0  # centre (3.5, 7.5): inside
    attribution[0, 0] = 0.5
    inside = localisation.score_map(attribution, boxes, tolerance=0.0, resolution=10)
    assert inside.hit and inside.peak == (3.5, 7.5)
    assert inside.mass_inside == pytest.approx(1.0 / 1.5)
    assert inside.area_inside == pytest.approx(6 / 100)  # 2 x 3 pixel centres inside
    assert inside.random_hit_rate == pytest.approx(6 / 100)

    outside = np.zeros((10, 10), np.float32)
    outside[7, 6] = 1.0  # centre (6.5, 7.5): 2.5 px right of the box's edge at x = 4
    assert not localisation.score_map(outside, boxes, tolerance=2.4, resolution=10).hit
    near = localisation.score_map(outside, boxes, tolerance=2.5, resolution=10)
    assert near.hit and near.mass_inside == 0.0
    # Pixel centres within 2.5 px of the box, counted by hand: rows 6..8 (dy 0) columns 0..6,
    # 21; rows 5 and 9 (dy 0.5) columns 0..5, 12; row 4 (dy 1.5, dx <= 2) columns 0..5, 6;
    # row 3 (dy 2.5) columns 2..3, 2.
    assert near.random_hit_rate == pytest.approx(41 / 100)


def test_a_coarse_map_points_at_the_centre_of_its_maximal_cell():
    """A 3 x 3 map on a 30 px input: cell centres at 5, 15 and 25 px. The maximal cell (0, 2)
    points at (25, 5), inside the box x 22..30, y 0..8; resized, its value would be flat out to
    the corner (29, 0), and only the centre is what the cell saw."""
    cells = np.array([[0.1, 0.2, 0.9], [0.0, 0.3, 0.1], [0.0, 0.0, 0.0]], np.float32)
    box = Box(22.0, 0.0, 8.0, 8.0)
    score = localisation.score_map(cells, [box], tolerance=1.0, resolution=30)
    assert score.peak == (25.0, 5.0) and score.hit
    assert score.random_hit_rate == pytest.approx(1 / 9)  # of the 9 centres, only (25, 5)
    # within 11 px: (25, 5), (15, 5) at 7, (25, 15) at 7, (15, 15) at hypot(7, 7) = 9.9
    wide = localisation.score_map(cells, [box], tolerance=11.0, resolution=30)
    assert wide.random_hit_rate == pytest.approx(4 / 9)
    assert not localisation.score_map(cells, [Box(0.0, 20.0, 5.0, 5.0)], 3.0, 30).hit
    resized = localisation.to_input_size(cells, 30)
    inside = np.zeros((30, 30), bool)
    inside[0:8, 22:30] = True  # pixel centres y 0.5..7.5, x 22.5..29.5
    assert score.mass_inside == pytest.approx(resized[inside].sum() / resized.sum())
    assert score.area_inside == pytest.approx(64 / 900)


def test_flat_maps_point_nowhere():
    boxes = [Box(0.0, 0.0, 10.0, 10.0)]
    for flat in (np.zeros((10, 10)), np.full((10, 10), 3.0), np.ones((1, 1))):
        score = localisation.score_map(flat, boxes, 0.0, 10)
        assert not score.hit and score.peak is None


def test_summary_compares_with_the_random_and_uniform_maps():
    scores = [localisation.MapScore(True, 0.2, 0.5, 0.1, (0, 0)),
              localisation.MapScore(False, 0.4, 0.1, 0.3, (0, 0))]
    summary = localisation.summarise(scores)
    assert summary == {"images": 2, "hits": 1, "pointing_game": 0.5, "random_map":
                       pytest.approx(0.3), "mass_inside": pytest.approx(0.3),
                       "uniform_map_mass": pytest.approx(0.2)}
    assert localisation.summarise([])["pointing_game"] is None


def test_maps_resize_with_cells_covering_the_input_evenly():
    cells = np.array([[0.0, 1.0], [2.0, 3.0]], np.float32)
    resized = localisation.to_input_size(cells, 8)
    assert resized.shape == (8, 8)
    # Each cell covers a 4 x 4 quarter with its centre at 2 or 6: linear between the centres,
    # constant outside them.
    np.testing.assert_allclose(resized[:2, :3], [[0.0, 0.0, 0.125]] * 2, atol=1e-6)
    np.testing.assert_allclose(resized[1, 4], 0.625, atol=1e-6)  # x 4.5: (4.5 - 2) / 4
    np.testing.assert_allclose(resized[4, 1], 2 * 0.625, atol=1e-6)
    np.testing.assert_allclose(resized[6:, 6:], 3.0, atol=1e-6)


@pytest.mark.parametrize("size,resolution", [((400, 300), 64), ((90, 120), 60)])
def test_boxes_follow_the_evaluation_crop_and_resize(tmp_path, size, resolution):
    """A white rectangle drawn in an image file lands where `to_input` maps its box: the
    transform's own pixels (JPEG draft decoding at 400 x 300 -> 64 px, the centred square
    crop of a portrait or landscape image) are bright exactly there."""
    width, height = size
    box = Box(0.55 * width, 0.3 * height, 0.2 * width, 0.25 * height)
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[int(box.y):int(box.y + box.height), int(box.x):int(box.x + box.width)] = 255
    path = tmp_path / "image.jpeg"
    Image.fromarray(pixels).save(path, quality=95)
    transform = ImageTransform(resolution=resolution, channels=3, mean=(0.5,) * 3,
                               std=(0.5,) * 3)
    record = Record("image", str(path), 0, "p")
    stored, decoded = localisation.stored_and_decoded_size(transform, record)
    assert stored == size
    if size == (400, 300):
        assert decoded[0] < 400  # the draft decoder shrank it
    (mapped,) = localisation.to_input([box], stored, decoded, transform)
    bright = transform.pixels(str(path), None).mean(axis=-1) > 127
    rows, cols = np.nonzero(bright)
    assert abs(cols.min() - mapped.x) <= 1.0 and abs(cols.max() + 1 - mapped.x - mapped.width) <= 1
    assert abs(rows.min() - mapped.y) <= 1.0 and abs(rows.max() + 1 - mapped.y - mapped.height) <= 1


def test_boxes_cut_away_by_the_crop_are_dropped():
    transform = ImageTransform(resolution=10, channels=3, mean=(0.5,) * 3, std=(0.5,) * 3)
    # 200 x 100: the crop keeps x 50..150, scaled by 10 / 100.
    kept, = localisation.to_input([Box(0, 0, 10, 10), Box(140, 20, 20, 10)], (200, 100),
                                  (200, 100), transform)
    assert kept == Box(9.0, 2.0, 1.0, 1.0)


def test_graham_preprocessing_is_not_followed():
    from jaxtl.data.decoders import ImageFileDecoder
    from jaxtl.data.eyepacs.graham import GrahamPreprocess

    plain = ImageTransform(resolution=8, channels=3, mean=(0.5,) * 3, std=(0.5,) * 3)
    graham = ImageTransform(resolution=8, channels=3, mean=(0.5,) * 3, std=(0.5,) * 3,
                            decoder=ImageFileDecoder(3, GrahamPreprocess()))
    assert localisation.follows_geometry(plain) and not localisation.follows_geometry(graham)
