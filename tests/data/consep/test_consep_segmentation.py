"""CoNSeP tiles for segmentation: the tile cache, pixel classes, splits, training crops whose
labels move with their pixels, and the stain augmentation."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import scipy.io
from conftest import tiny_config
from PIL import Image

from jaxtl.config import validation as configuration
from jaxtl.core.errors import ConfigError
from jaxtl.data import loading
from jaxtl.data.consep import segmentation
from jaxtl.data.records import DataError


def position_image(height: int, width: int) -> np.ndarray:
    """RGB whose red is the row and green the column: a pixel says where it came from."""
    rows, cols = np.mgrid[:height, :width]
    return np.stack([rows, cols, np.full_like(rows, 7)], axis=-1).astype(np.uint8)


def write_tile(root: pathlib.Path, folder: str, name: str, size: tuple[int, int] = (40, 50),
               seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A tile with random types on a grid of 5x5 nuclei; returns (inst_map, type_map)."""
    (root / folder / "Images").mkdir(parents=True, exist_ok=True)
    (root / folder / "Labels").mkdir(parents=True, exist_ok=True)
    Image.fromarray(position_image(*size)).save(root / folder / "Images" / f"{name}.png")
    rng = np.random.default_rng(seed)
    inst = np.zeros(size, np.int32)
    types = np.zeros(size, np.int32)
    for i, (r, c) in enumerate((r, c) for r in range(2, size[0] - 5, 8)
                               for c in range(2, size[1] - 5, 8)):
        inst[r:r + 5, c:c + 5] = i + 1
        types[r:r + 5, c:c + 5] = rng.integers(1, 8)
    scipy.io.savemat(root / folder / "Labels" / f"{name}.mat",
                     {"inst_map": inst, "type_map": types,
                      "inst_type": np.zeros((inst.max(), 1)), "inst_centroid": np.zeros((0, 2))})
    return inst, types


@pytest.fixture
def download(tmp_path):
    root = tmp_path / "CoNSeP"
    maps = {}
    for i in range(1, 6):
        maps[f"train_{i}"] = write_tile(root, "Train", f"train_{i}", seed=i)
    for i in range(1, 3):
        maps[f"test_{i}"] = write_tile(root, "Test", f"test_{i}", seed=10 + i)
    return root, maps


def test_tiles_cached_as_records_with_official_test_tiles(tmp_path, download):
    root, maps = download
    config = tiny_config(tmp_path, "consep_seg", {"data.root": str(root),
                                                   "consep_seg.val_tiles": 2})
    splits = loading.load_splits(config)
    assert sorted(r.image_id for r in splits.test) == ["test_1", "test_2"]
    assert len(splits.val) == 2 and len(splits.train) == 3
    assert {r.patient for r in splits.train} == {r.image_id for r in splits.train}
    assert splits.task.kind == "segmentation"
    assert splits.task.names == ("background", "other", "inflammatory", "epithelial",
                                 "spindle-shaped")
    record = splits.test[0]
    image, classes, instances = segmentation.read_tile(record.path, "type7")
    inst, types = maps[record.image_id]
    np.testing.assert_array_equal(image, position_image(40, 50))
    np.testing.assert_array_equal(classes, types)
    np.testing.assert_array_equal(instances, inst)
    _, merged, _ = segmentation.read_tile(record.path, "type4")
    np.testing.assert_array_equal(merged, np.array([0, 1, 2, 3, 3, 4, 4, 4])[types])
    _, nuclei, _ = segmentation.read_tile(record.path, "nuclei")
    np.testing.assert_array_equal(nuclei, (types > 0).astype(int))
    # The training size is counted in tiles.
    config.data.train_per_class = 2
    assert len(loading.load_splits(config).train) == 2


def test_a_label_file_without_maps_names_the_file(tmp_path, download):
    root, _ = download
    scipy.io.savemat(root / "Train" / "Labels" / "train_2.mat", {"inst_type": np.zeros((1, 1))})
    config = tiny_config(tmp_path, "consep_seg", {"data.root": str(root)})
    with pytest.raises(DataError, match="train_2.mat has no 'inst_map'"):
        loading.load_splits(config)
    config.data.bad_images = "skip"
    splits = loading.load_splits(config)
    assert "train_2" not in {r.image_id for r in (*splits.train, *splits.val)}


@pytest.mark.parametrize("size", [16, 64])
def test_crop_labels_move_with_their_pixels(tmp_path, download, size):
    root, maps = download
    config = tiny_config(tmp_path, "consep_seg", {"data.root": str(root)})
    splits = loading.load_splits(config)
    record = next(r for r in splits.train)
    inst, types = maps[record.image_id]
    crop = segmentation.CropExample(size=size, task="type7")
    turned = set()
    for seed in range(30):
        example = crop(record, np.random.default_rng(seed))
        assert example["image"].shape == (size, size, 3) and example["label"].shape == (size, size)
        assert example["image"].dtype == np.uint8  # normalised on the device
        rows = example["image"][..., 0].astype(int)
        cols = example["image"][..., 1].astype(int)
        np.testing.assert_array_equal(example["label"], types[rows, cols])
        turned.add((int(rows[0, 1] - rows[0, 0]), int(cols[0, 1] - cols[0, 0])))
    if size == 16:  # flips and turns: the first row runs in all four directions
        assert turned >= {(0, 1), (0, -1), (1, 0), (-1, 0)}


def test_stain_jitter_keeps_the_image_at_zero_and_changes_it_otherwise():
    image = np.random.default_rng(0).integers(30, 255, (8, 8, 3)).astype(np.uint8)
    same = segmentation.stain_jitter(image, 0.0, np.random.default_rng(1))
    assert np.abs(same.astype(int) - image).max() <= 1
    jittered = segmentation.stain_jitter(image, 0.1, np.random.default_rng(1))
    assert np.abs(jittered.astype(int) - image).mean() > 1


def test_config_refuses_what_segmentation_cannot_do(tmp_path):
    config = tiny_config(tmp_path, "consep_seg", {
        "data.augment": "crop,flip", "train.class_weights": "balanced",
        "seg.ce_weight": 0.0, "seg.dice_weight": 0.0})
    with pytest.raises(ConfigError) as error:
        configuration.validate(config)
    message = str(error.value)
    assert "'flip' and 'rotate' (90-degree turns), not crop" in message
    assert "train.class_weights is 'balanced'" in message
    assert "seg.ce_weight and seg.dice_weight are both 0" in message
    configuration.validate(tiny_config(tmp_path, "consep_seg"))
