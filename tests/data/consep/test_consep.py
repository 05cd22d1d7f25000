"""CoNSeP reader: .mat keys, centroid order, border patches, labels, splits, patch cache."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
from layouts.consep import random_image, write_tile

from jaxtl.core.errors import DataError
from jaxtl.data.consep import reader as consep
from jaxtl.data.decoders import PatchArrayDecoder


@pytest.fixture
def root(tmp_path):
    """3 Train and 2 Test tiles, 4 nuclei each, every type present."""
    root = tmp_path / "CoNSeP"
    for folder, prefix, count in (("Train", "train", 3), ("Test", "test", 2)):
        for i in range(1, count + 1):
            seed = i + (10 if folder == "Test" else 0)
            types = [(seed + k) % 7 + 1 for k in range(4)]
            write_tile(root, folder, f"{prefix}_{i}", random_image(seed),
                       [(5.0, 6.0), (20.2, 4.7), (12.0, 18.0), (28.0, 22.0)], types)
    return root


def index_of(root, tmp_path, size=8, border="reflect"):
    return consep.build_patch_index(root, patch_size=size, border=border,
                                    cache_dir=tmp_path / "cache")


def test_centroids_are_x_then_y(tmp_path):
    image = np.zeros((40, 60, 3), np.uint8)
    image[10, 45] = (255, 0, 0)  # row 10, column 45: x = 45, y = 10
    image[45 % 40, 10] = (0, 255, 0)  # where a (y, x) reading would look
    write_tile(tmp_path / "r", "Train", "train_1", image, [(45.0, 10.0)], [2])
    write_tile(tmp_path / "r", "Test", "test_1", image, [(45.0, 10.0)], [2])
    index = index_of(tmp_path / "r", tmp_path, size=9)
    patch = np.load(index.patches_file)[0]
    assert tuple(patch[4, 4]) == (255, 0, 0)  # the centre of a 9x9 patch
    assert patch.sum() == 255  # nothing else of the tile is in reach
    np.testing.assert_array_equal(index.centroid_xy[0], (45.0, 10.0))


def test_centroid_rounds_to_the_nearest_pixel_and_even_patches_put_it_right_of_centre(tmp_path):
    image = np.zeros((30, 30, 3), np.uint8)
    image[12, 17] = 200
    write_tile(tmp_path / "r", "Train", "train_1", image, [(16.6, 11.5)], [1])
    write_tile(tmp_path / "r", "Test", "test_1", image, [(16.6, 11.5)], [1])
    patch = np.load(index_of(tmp_path / "r", tmp_path, size=8).patches_file)[0]
    assert tuple(np.argwhere(patch[..., 0] == 200)[0]) == (4, 4)  # S // 2 for S = 8


@pytest.mark.parametrize("border", ["reflect", "zero"])
def test_border_patches_follow_the_stated_rule(tmp_path, border):
    image = random_image(3, (20, 20))
    write_tile(tmp_path / "r", "Train", "train_1", image, [(1.0, 2.0)], [3])
    write_tile(tmp_path / "r", "Test", "test_1", image, [(18.0, 19.0)], [3])
    index = index_of(tmp_path / "r", tmp_path, size=8, border=border)
    patches = np.load(index.patches_file)

    def expected(cx: int, cy: int) -> np.ndarray:
        rows, cols = np.arange(cy - 4, cy + 4), np.arange(cx - 4, cx + 4)
        if border == "zero":
            out = np.zeros((8, 8, 3), np.uint8)
            for i, r in enumerate(rows):
                for j, c in enumerate(cols):
                    if 0 <= r < 20 and 0 <= c < 20:
                        out[i, j] = image[r, c]
            return out
        # Mirror about the edge pixels: index -k -> k, 19 + k -> 19 - k.
        mirror = lambda k: -k if k < 0 else (38 - k if k > 19 else k)  # noqa: E731
        return image[np.ix_([mirror(r) for r in rows], [mirror(c) for c in cols])]

    np.testing.assert_array_equal(patches[0], expected(1, 2))
    np.testing.assert_array_equal(patches[1], expected(18, 19))


def test_rgba_tiles_read_as_rgb(tmp_path):
    image = random_image(4)
    write_tile(tmp_path / "r", "Train", "train_1", image, [(10.0, 10.0)], [1], mode="RGBA")
    write_tile(tmp_path / "r", "Test", "test_1", image, [(10.0, 10.0)], [1])
    patches = np.load(index_of(tmp_path / "r", tmp_path, size=4).patches_file)
    np.testing.assert_array_equal(patches[0], patches[1])
    assert patches.shape == (2, 4, 4, 3)


def test_seven_and_four_class_labels():
    types = np.arange(1, 8)
    np.testing.assert_array_equal(consep.labels_of(types, "type7"), [0, 1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(consep.labels_of(types, "type4"), [0, 1, 2, 2, 3, 3, 3])
    assert consep.class_names("type4") == ("other", "inflammatory", "epithelial",
                                           "spindle-shaped")


def test_records_point_at_their_patch_and_group_by_tile(root, tmp_path):
    index = index_of(root, tmp_path)
    records = consep.make_records(index, "type7")
    assert len(records) == 20
    decoder = PatchArrayDecoder(3)
    patches = np.load(index.patches_file)
    for row in (0, 7, 19):
        np.testing.assert_array_equal(decoder.decode(records[row].path, 8), patches[row])
    assert records[4].patient == "train_2" and records[4].image_id == "train_2/1"
    assert records[4].label == index.type[4] - 1
    assert [r.patient for r in records[::4]] == ["train_1", "train_2", "train_3", "test_1",
                                                 "test_2"]


def test_bad_types_and_outside_centroids_are_left_out_and_counted(tmp_path, caplog):
    image = random_image(5)
    write_tile(tmp_path / "r", "Train", "train_1", image,
               [(5.0, 5.0), (6.0, 6.0), (7.0, 7.0), (40.0, 5.0), (8.0, 8.0)], [1, 0, 9, 2, 2.5])
    write_tile(tmp_path / "r", "Test", "test_1", image, [(5.0, 5.0)], [4])
    with caplog.at_level("WARNING"):
        index = index_of(tmp_path / "r", tmp_path)
    assert index.type.tolist() == [1, 4]
    assert "left out 3 nuclei whose inst_type is not 1..7 and 1 whose centroid" in caplog.text


def test_missing_mat_key_names_the_file_and_key(tmp_path):
    write_tile(tmp_path / "r", "Train", "train_1", random_image(1), [(5.0, 5.0)], [1])
    write_tile(tmp_path / "r", "Test", "test_1", random_image(1), [(5.0, 5.0)], [1])
    path = tmp_path / "r" / "Test" / "Labels" / "test_1.mat"
    scipy.io.savemat(path, {"inst_map": np.zeros((4, 4)), "inst_type": np.ones((1, 1))})
    with pytest.raises(DataError, match="test_1.mat has no 'inst_centroid'"):
        index_of(tmp_path / "r", tmp_path)


def test_layout_errors_say_what_is_missing(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        consep.find_tiles(tmp_path / "nowhere")
    write_tile(tmp_path / "r", "Train", "train_1", random_image(1), [(5.0, 5.0)], [1])
    with pytest.raises(DataError, match="must hold Images/"):
        consep.find_tiles(tmp_path / "r")
    write_tile(tmp_path / "r", "Test", "test_1", random_image(1), [(5.0, 5.0)], [1])
    (tmp_path / "r" / "Test" / "Labels" / "test_1.mat").unlink()
    with pytest.raises(DataError, match="1 tiles in .* have no .mat"):
        consep.find_tiles(tmp_path / "r")


def test_tiles_sort_naturally(tmp_path):
    for i in (1, 2, 10):
        write_tile(tmp_path / "r", "Train", f"train_{i}", random_image(i), [(5.0, 5.0)], [1])
    write_tile(tmp_path / "r", "Test", "test_1", random_image(1), [(5.0, 5.0)], [1])
    assert [t.name for t in consep.find_tiles(tmp_path / "r")] == ["train_1", "train_2",
                                                                 "train_10", "test_1"]


def test_patch_cache_is_built_once_and_rebuilt_when_a_tile_changes(root, tmp_path, monkeypatch):
    first = index_of(root, tmp_path)
    writes = []
    monkeypatch.setattr(consep, "_write_patch_cache",
                        lambda *args: writes.append(args) or pytest.fail("cache not reused"))
    again = index_of(root, tmp_path)
    assert again.patches_file == first.patches_file and not writes
    monkeypatch.undo()
    write_tile(root, "Train", "train_1", random_image(99), [(5.0, 6.0)], [2])
    changed = index_of(root, tmp_path)
    assert changed.patches_file != first.patches_file and len(changed) == 17
    other_size = index_of(root, tmp_path, size=12)
    assert np.load(other_size.patches_file).shape[1:] == (12, 12, 3)


def split(root, tmp_path, **kw):
    settings = dict(task="type7", patch_size=8, border="reflect", split="tiles", test_tiles=0,
                    val_tiles=1, val_fraction=0.2, test_fraction=0.3, split_seed=0,
                    cache_dir=tmp_path / "cache") | kw
    return consep.load(root, **settings)


def tiles_of(records):
    return {r.patient for r in records}


def test_official_tile_split_holds_out_the_test_folder(root, tmp_path):
    splits = split(root, tmp_path)
    assert tiles_of(splits.test) == {"test_1", "test_2"}
    assert len(tiles_of(splits.val)) == 1 and tiles_of(splits.val) < {"train_1", "train_2",
                                                                      "train_3"}
    parts = [tiles_of(splits.train), tiles_of(splits.val), tiles_of(splits.test)]
    assert all(not (a & b) for i, a in enumerate(parts) for b in parts[i + 1:])
    assert sum(len(s) for s in (splits.train, splits.val, splits.test)) == 20


def test_k_held_out_tiles_are_seeded_and_disjoint(root, tmp_path):
    a = split(root, tmp_path, test_tiles=2, split_seed=1)
    b = split(root, tmp_path, test_tiles=2, split_seed=1)
    assert tiles_of(a.test) == tiles_of(b.test) and len(tiles_of(a.test)) == 2
    assert not tiles_of(a.test) & (tiles_of(a.train) | tiles_of(a.val))
    draws = {frozenset(tiles_of(split(root, tmp_path, test_tiles=2, split_seed=s).test))
             for s in range(8)}
    assert len(draws) > 1
    with pytest.raises(DataError, match="test_tiles=5 leaves no tile"):
        split(root, tmp_path, test_tiles=5)


def test_random_split_is_over_patches_and_shares_tiles(root, tmp_path):
    a = split(root, tmp_path, split="random", split_seed=3)
    b = split(root, tmp_path, split="random", split_seed=3)
    c = split(root, tmp_path, split="random", split_seed=4)
    assert (len(a.train), len(a.val), len(a.test)) == (10, 4, 6)
    assert [r.image_id for r in a.test] == [r.image_id for r in b.test]
    assert [r.image_id for r in a.test] != [r.image_id for r in c.test]
    assert tiles_of(a.train) & tiles_of(a.test)  # patches of one tile on both sides
