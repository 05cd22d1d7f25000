"""BigEarthNet-S2: the 43 -> 19 nomenclature, GeoTIFF bands, split lists, labels, statistics."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import tifffile
from layouts.bigearthnet import write_patch
from scipy import ndimage

from jaxtl.core.errors import DataError
from jaxtl.data.bigearthnet import bands as band_stack
from jaxtl.data.bigearthnet import labels as bigearthnet_labels
from jaxtl.data.bigearthnet import reader as ben_reader
from jaxtl.data.bigearthnet.labels import LABELS_19, LABELS_43, TO_19

# The published label_conversion (label_indices.json of the BigEarthNet-S2 19-class models), as
# 19-class name -> indices into the 43 original labels in CORINE code order.
PUBLISHED_CONVERSION = {
    "Urban fabric": (0, 1),
    "Industrial or commercial units": (2,),
    "Arable land": (11, 12, 13),
    "Permanent crops": (14, 15, 16, 18),
    "Pastures": (17,),
    "Complex cultivation patterns": (19,),
    "Land principally occupied by agriculture, with significant areas of natural vegetation":
        (20,),
    "Agro-forestry areas": (21,),
    "Broad-leaved forest": (22,),
    "Coniferous forest": (23,),
    "Mixed forest": (24,),
    "Natural grassland and sparsely vegetated areas": (25, 31),
    "Moors, heathland and sclerophyllous vegetation": (26, 27),
    "Transitional woodland, shrub": (28,),
    "Beaches, dunes, sands": (29,),
    "Inland wetlands": (33, 34),
    "Coastal wetlands": (35, 36),
    "Inland waters": (38, 39),
    "Marine waters": (40, 41, 42),
}
PUBLISHED_DROPPED = ("Road and rail networks and associated land", "Port areas", "Airports",
                     "Mineral extraction sites", "Dump sites", "Construction sites",
                     "Green urban areas", "Sport and leisure facilities", "Bare rock",
                     "Burnt areas", "Intertidal flats")


def test_every_one_of_the_43_labels_is_mapped_or_dropped_as_published():
    assert len(LABELS_43) == len(set(LABELS_43)) == 43
    assert tuple(PUBLISHED_CONVERSION) == LABELS_19 and len(LABELS_19) == 19
    expected = {name: None for name in LABELS_43}
    for target, sources in PUBLISHED_CONVERSION.items():
        for index in sources:
            expected[LABELS_43[index]] = target
    assert TO_19 == expected
    assert set(bigearthnet_labels.DROPPED) == set(PUBLISHED_DROPPED)
    assert sum(v is not None for v in TO_19.values()) == 32


def test_metadata_spellings_of_the_43_names():
    # As written in the v1.0 *_labels_metadata.json files (not the CORINE guide's spellings).
    for name in ("Natural grassland", "Peatbogs", "Bare rock", "Transitional woodland/shrub"):
        assert name in LABELS_43
    for wrong in ("Natural grasslands", "Peat bogs", "Bare rocks"):
        assert wrong not in LABELS_43


def test_multi_hot_merges_drops_and_rejects_unknown_names():
    labels = ["Discontinuous urban fabric", "Continuous urban fabric", "Airports", "Estuaries"]
    vector = bigearthnet_labels.multi_hot(labels, "labels19", where="p")
    assert [LABELS_19[i] for i in np.flatnonzero(vector)] == ["Urban fabric", "Marine waters"]
    vector43 = bigearthnet_labels.multi_hot(labels, "labels43", where="p")
    assert sum(vector43) == 4 and vector43[LABELS_43.index("Airports")] == 1
    with pytest.raises(DataError, match="'Snow' is not one of the 43"):
        bigearthnet_labels.multi_hot(["Snow"], "labels19", where="p")


# --- files in the real layout ----------------------------------------------------------------


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "BigEarthNet-v1.0"
    splits = {"train": ["S2A_MSIL2A_20170617T113321_1_1", "S2A_MSIL2A_20170617T113321_1_2"],
              "val": ["S2B_MSIL2A_20180204T094161_3_7"], "test": ["S2B_MSIL2A_20180204T094161_9_9"]}
    labels = [["Mixed forest", "Water bodies"], ["Airports"], ["Rice fields", "Peatbogs"],
              ["Sea and ocean"]]
    for i, name in enumerate(n for names in splits.values() for n in names):
        write_patch(root, name, labels[i], seed=i)
    write_patch(root, "S2A_MSIL2A_20170617T113321_5_5", ["Mixed forest"])  # unlisted (cloud)
    for split, names in splits.items():
        (root / f"{split}.csv").write_text("".join(f"{n}\n" for n in names))
    return root


def load(root, tmp_path, task="labels19", split_dir=""):
    return ben_reader.load(root, task=task, split_dir=split_dir, cache_dir=tmp_path / "cache")


def test_official_lists_give_the_splits_with_multi_hot_labels(root, tmp_path, caplog):
    with caplog.at_level("WARNING"):
        splits = load(root, tmp_path)
    assert [len(s) for s in (splits.train, splits.val, splits.test)] == [2, 1, 1]
    first = splits.train[0]
    assert first.image_id == "S2A_MSIL2A_20170617T113321_1_1"
    assert pathlib.Path(first.path) == root.resolve() / first.image_id
    assert [LABELS_19[i] for i in np.flatnonzero(first.label)] == ["Mixed forest",
                                                                  "Inland waters"]
    assert splits.train[1].label == (0,) * 19  # only a dropped class: kept, all negative
    assert "1 listed patches have none of the 19 labels19 labels" in caplog.text
    assert [LABELS_19[i] for i in np.flatnonzero(splits.val[0].label)] == ["Arable land",
                                                                          "Inland wetlands"]
    assert splits.class_names == LABELS_19
    assert load(root, tmp_path, task="labels43").train[1].label[LABELS_43.index("Airports")] == 1


def test_split_lists_may_live_elsewhere_and_labels_are_cached(root, tmp_path, monkeypatch):
    elsewhere = tmp_path / "lists"
    elsewhere.mkdir()
    for split in ("train", "val", "test"):
        (root / f"{split}.csv").rename(elsewhere / f"{split}.csv")
    first = load(root, tmp_path, split_dir=str(elsewhere))
    monkeypatch.setattr(ben_reader, "read_patch_labels",
                        lambda folder: pytest.fail("labels read again instead of the cache"))
    again = load(root, tmp_path, split_dir=str(elsewhere))
    assert [r.label for r in again.train] == [r.label for r in first.train]


def test_missing_patches_and_lists_are_clear_errors(root, tmp_path):
    (root / "test.csv").write_text("S2B_MSIL2A_20180204T094161_9_9\nS2A_MSIL2A_20990101T000000_0_0\n")
    with pytest.raises(DataError, match="1 of 5 listed patches have no folder"):
        load(root, tmp_path)
    (root / "val.csv").unlink()
    with pytest.raises(DataError, match="val.csv not found"):
        load(root, tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load(tmp_path / "nowhere", tmp_path)


def test_bands_are_stacked_in_order_and_resampled_to_120(root, tmp_path):
    name = "S2A_MSIL2A_20170617T113321_1_1"
    bands = {b: tifffile.imread(root / name / f"{name}_{b}.tif") for b in band_stack.BANDS}
    assert {b: a.shape for b, a in bands.items()} == {
        b: (120, 120) if band_stack.GRID_METRES[b] == 10 else
        (60, 60) if band_stack.GRID_METRES[b] == 20 else (20, 20) for b in band_stack.BANDS}
    nearest = band_stack.BandStackDecoder(("B04", "B8A", "B09"), "nearest")
    out = nearest.decode(str(root / name), 120)
    assert out.shape == (120, 120, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[..., 0], bands["B04"])
    np.testing.assert_array_equal(out[..., 1], np.kron(bands["B8A"], np.ones((2, 2))))
    np.testing.assert_array_equal(out[..., 2], np.kron(bands["B09"], np.ones((6, 6))))
    bilinear = band_stack.BandStackDecoder(("B05", "B01"), "bilinear").decode(str(root / name),
                                                                             120)
    for channel, band in enumerate(("B05", "B01")):
        reference = ndimage.zoom(bands[band].astype(np.float64), 120 / bands[band].shape[0],
                                 order=1, grid_mode=True, mode="nearest")
        np.testing.assert_allclose(bilinear[..., channel], reference, rtol=1e-5, atol=0.05)
    assert band_stack.BandStackDecoder(band_stack.parse_bands("all")).decode(
        str(root / name), 120).shape == (120, 120, 12)


def test_a_band_of_the_wrong_size_is_named(tmp_path):
    write_patch(tmp_path, "P_1_1", ["Pastures"], sides={"B11": 120})
    decoder = band_stack.BandStackDecoder(band_stack.parse_bands("10m20m"))
    with pytest.raises(DataError, match=r"P_1_1_B11.tif is \(120, 120\); .* is \(60, 60\)"):
        decoder.decode(str(tmp_path / "P_1_1"), 120)


def test_band_selections():
    assert band_stack.parse_bands("10m20m") == ("B02", "B03", "B04", "B05", "B06", "B07",
                                                  "B08", "B8A", "B11", "B12")
    assert len(band_stack.parse_bands("all")) == 12 and "B10" not in band_stack.BANDS
    assert band_stack.parse_bands("b04, B03,B02") == ("B04", "B03", "B02")
    for bad in ("B10", "B04,B04", "", "rgbn"):
        with pytest.raises(ValueError, match="is not a band selection"):
            band_stack.parse_bands(bad)


def test_published_statistics_are_per_band_on_the_reflectance_scale():
    mean, std = band_stack.published_statistics(("B02", "B12"))
    assert mean == pytest.approx((429.9430203 / 1e4, 1009.32729131 / 1e4), abs=1e-6)
    assert std == pytest.approx((572.41639287 / 1e4, 818.86747235 / 1e4), abs=1e-6)


def test_channel_statistics_of_the_training_bands(root, tmp_path):
    from jaxtl.commands.channel_stats import channel_statistics

    records = load(root, tmp_path).train
    decoder = band_stack.BandStackDecoder(("B02", "B8A"), "nearest")
    stats = channel_statistics(records, decoder, max_images=-1, seed=0, resolution=120)
    stacked = np.concatenate([decoder.decode(r.path, 120).reshape(-1, 2) for r in records])
    stacked = stacked.astype(np.float64) / 1e4
    assert stats["images"] == 2 and stats["pixels"] == 2 * 120 * 120
    np.testing.assert_allclose(stats["mean"], stacked.mean(0), atol=1e-6)
    np.testing.assert_allclose(stats["std"], stacked.std(0), atol=1e-6)
    one = channel_statistics(records, decoder, max_images=1, seed=0, resolution=120)
    assert one["images"] == 1 and one["mean"] != stats["mean"]
