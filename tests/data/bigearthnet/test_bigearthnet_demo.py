"""The BigEarthNet demo data: real GeoTIFFs and metadata, official-list layout, learnable labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import StandardScaler

from jaxtl.data.bigearthnet import bands as band_stack
from jaxtl.data.bigearthnet import demo as bigearthnet_demo
from jaxtl.data.bigearthnet import reader as ben_reader
from jaxtl.data.bigearthnet.labels import LABELS_43


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "bigearthnet"
    return bigearthnet_demo.write_demo_dataset(root, num_patches=160, seed=0)


def test_patch_folders_hold_georeferenced_bands_and_metadata(demo_root):
    lists = ben_reader.read_split_lists(demo_root)
    name = lists["train"][0]
    assert bigearthnet_demo.re_patch_name(name)
    with tifffile.TiffFile(demo_root / name / f"{name}_B8A.tif") as tif:
        page = tif.pages[0]
        assert page.shape == (60, 60) and page.dtype == np.uint16
        assert page.tags["ModelPixelScaleTag"].value[:2] == (20.0, 20.0)
        geokeys = page.tags["GeoKeyDirectoryTag"].value
        assert 3072 in geokeys[4::4]  # ProjectedCSTypeGeoKey: a UTM zone
    metadata = json.loads((demo_root / name / f"{name}_labels_metadata.json").read_text())
    assert set(metadata) == {"labels", "coordinates", "projection", "tile_source",
                             "acquisition_date"}
    assert set(metadata["coordinates"]) == {"ulx", "uly", "lrx", "lry"}
    assert metadata["labels"] and set(metadata["labels"]) <= set(LABELS_43)


def test_lists_are_disjoint_and_leave_out_the_cloud_patches(demo_root):
    lists = ben_reader.read_split_lists(demo_root)
    listed = [n for names in lists.values() for n in names]
    assert len(listed) == len(set(listed)) == 160
    assert [len(lists[s]) for s in ("train", "val", "test")] == [96, 32, 32]
    folders = {p.name for p in demo_root.iterdir() if p.is_dir()}
    assert set(listed) < folders and len(folders - set(listed)) >= 1


def test_labels_are_learnable_from_the_bands(demo_root, tmp_path):
    """Quantiles of a patch's log band values predict its 19-class labels, beyond chance."""
    splits = ben_reader.load(demo_root, task="labels19", split_dir="", cache_dir=tmp_path)
    decoder = band_stack.BandStackDecoder(band_stack.parse_bands("10m20m"))

    def features(records):
        stacks = [np.log1p(decoder.decode(r.path, 120).reshape(-1, 10)) for r in records]
        x = np.array([np.percentile(s, (5, 25, 50, 75, 95), axis=0).ravel() for s in stacks])
        return x, np.array([r.label for r in records])

    x_train, y_train = features(list(splits.train) + list(splits.val))
    x_test, y_test = features(splits.test)
    scaler = StandardScaler().fit(x_train)
    x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
    seen = y_train.any(0) & ~y_train.all(0)
    model = OneVsRestClassifier(LogisticRegression(C=1.0, max_iter=1000))
    predicted = model.fit(x_train, y_train[:, seen]).predict(x_test)
    score = f1_score(y_test[:, seen], predicted, average="micro")
    prevalence = y_test[:, seen].mean()
    chance = 2 * prevalence / (1 + prevalence)  # micro F1 of predicting every label present
    assert score > chance + 0.2
