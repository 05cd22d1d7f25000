"""The CoNSeP demo data: the real layout, consistent annotations, learnable nucleus types."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
from PIL import Image
from sklearn.linear_model import LogisticRegression

from jaxtl.data.consep import demo as consep_demo
from jaxtl.data.consep import reader as consep


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "consep"
    return consep_demo.write_demo_dataset(root, num_tiles=9, tile_size=160, seed=0)


def test_layout_and_mat_keys_of_the_download(demo_root):
    tiles = consep.find_tiles(demo_root)
    assert [t.name for t in tiles] == [f"train_{i}" for i in range(1, 7)] + [
        "test_1", "test_2", "test_3"]
    mat = scipy.io.loadmat(tiles[0].labels)
    assert {"inst_map", "type_map", "inst_type", "inst_centroid"} <= set(mat)
    count = mat["inst_type"].shape[0]
    assert mat["inst_type"].shape == (count, 1) and mat["inst_centroid"].shape == (count, 2)
    assert mat["inst_map"].max() == count and mat["inst_map"].shape == (160, 160)
    with Image.open(tiles[0].image) as image:
        assert (image.mode, image.size) == ("RGB", (160, 160))
    assert "SYNTHETIC" in (demo_root / consep_demo.README_FILE).read_text()


def test_annotations_agree_with_each_other(demo_root):
    for tile in consep.find_tiles(demo_root)[:3]:
        mat = scipy.io.loadmat(tile.labels)
        inst_map, type_map = mat["inst_map"], mat["type_map"]
        types = mat["inst_type"].reshape(-1).astype(int)
        for instance, (x, y) in enumerate(mat["inst_centroid"], start=1):
            rows, cols = np.nonzero(inst_map == instance)
            assert (x, y) == pytest.approx((cols.mean(), rows.mean()))  # x is the column
            assert (type_map[rows, cols] == types[instance - 1]).all()
        assert ((type_map > 0) == (inst_map > 0)).all()


def test_the_same_seed_writes_the_same_tiles(tmp_path):
    a = consep_demo.render_tile(128, np.random.default_rng(5))
    b = consep_demo.render_tile(128, np.random.default_rng(5))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1]["inst_map"], b[1]["inst_map"])


def test_nucleus_types_are_learnable_on_held_out_tiles(demo_root, tmp_path):
    """A linear model on 8x8-pooled 16x16 patches beats the majority class on unseen tiles."""
    splits = consep.load(demo_root, task="type7", patch_size=16, border="reflect", split="tiles",
                         test_tiles=0, val_tiles=1, val_fraction=0.1, test_fraction=0.3,
                         split_seed=0, cache_dir=tmp_path)
    patches = np.load(splits.train[0].path.rpartition("#")[0]).astype(np.float32) / 255.0

    def features(records):
        rows = [int(r.path.rpartition("#")[2]) for r in records]
        pooled = patches[rows].reshape(len(rows), 8, 2, 8, 2, 3).mean(axis=(2, 4))
        return pooled.reshape(len(rows), -1), np.array([r.label for r in records])

    x_train, y_train = features(list(splits.train) + list(splits.val))
    x_test, y_test = features(splits.test)
    model = LogisticRegression(max_iter=300, C=0.05).fit(x_train, y_train)
    accuracy = model.score(x_test, y_test)
    majority = np.bincount(y_test).max() / len(y_test)
    assert len(set(y_test)) >= 5 and accuracy > majority + 0.2
