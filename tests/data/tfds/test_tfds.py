"""TFDS datasets in their real on-disk format (prepared here by TFDS itself from jaxtl's
synthetic data: jaxtl/data/tfds/demo.py) read without TensorFlow: records against TFDS's own
decoding of every example, splits, labels, bands, and the errors for a missing package, an
unprepared dataset and the TFRecord format."""

from __future__ import annotations

import json
import pathlib
import shutil
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from conftest import tiny_config

from jaxtl.config import validation as configuration
from jaxtl.core.errors import ConfigError, DataError
from jaxtl.core.tasks import MASKED, NEGATIVE, POSITIVE
from jaxtl.data import loading
from jaxtl.data.bigearthnet.bands import published_statistics
from jaxtl.data.bigearthnet.labels import LABELS_19, LABELS_43, TO_19
from jaxtl.data.chest.labels import CHEXPERT_LABELS
from jaxtl.data.tfds import demo
from jaxtl.engine import build as run
from jaxtl.training import loop as train

SIZES = {"diabetic_retinopathy_detection/btgraham-300": 12, "bigearthnet/all": 12,
         "bigearthnet/rgb": 12, "chexpert": 12}


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory) -> dict[str, pathlib.Path]:
    """Each TFDS dataset prepared once, in a data_dir of its own."""
    folder = tmp_path_factory.mktemp("tfds")
    return {name: demo.write_demo_dataset(folder / name.replace("/", "-"), name,
                                          num_patients=count, image_size=48, seed=1)
            for name, count in SIZES.items()}


def config_for(name: str, data_dir: pathlib.Path, folder: pathlib.Path, **overrides):
    config = tiny_config(folder, f"tfds:{name}", {"data.tfds_dir": str(data_dir), **overrides})
    configuration.validate(config)
    return config


def tfds_examples(data_dir: pathlib.Path, name: str, split: str) -> list[dict]:
    """Every example of a split as TFDS decodes it (independently of jaxtl's reading)."""
    builder = tfds.builder(name, data_dir=str(data_dir))
    source = builder.as_data_source(split)
    return [source[i] for i in range(len(source))]


def test_retinopathy_records_are_tfds_examples(tfds_dir, tmp_path):
    name = "diabetic_retinopathy_detection/btgraham-300"
    config = config_for(name, tfds_dir[name], tmp_path)
    splits = loading.load_splits(config)
    for ours, theirs in (("train", "train"), ("val", "validation"), ("test", "test")):
        examples = tfds_examples(tfds_dir[name], name, theirs)
        records = splits.split(ours)
        assert [r.image_id for r in records] == [e["name"].decode() for e in examples]
        assert [r.label for r in records] == [int(e["label"]) for e in examples]
        assert [r.patient for r in records] == [e["name"].decode().split("_")[0]
                                                 for e in examples]
    pixels = run.image_transform(config, augment=False).decoder.decode(splits.train[0].path, 48)
    np.testing.assert_array_equal(np.asarray(pixels), tfds_examples(tfds_dir[name], name,
                                                                    "train")[0]["image"])


def test_retinopathy_patient_split_divides_tfds_train_by_patient(tfds_dir, tmp_path):
    name = "diabetic_retinopathy_detection/btgraham-300"
    splits = loading.load_splits(config_for(name, tfds_dir[name], tmp_path,
                                            **{"tfds.split": "patient"}))
    parts = [splits.split(s) for s in ("train", "val", "test")]
    names = sorted(e["name"].decode() for e in tfds_examples(tfds_dir[name], name, "train"))
    assert sorted(r.image_id for part in parts for r in part) == names
    patients = [{r.patient for r in part} for part in parts]
    assert all(patients) and not (patients[0] & patients[1] or patients[0] & patients[2]
                                  or patients[1] & patients[2])


def test_bigearthnet_labels_and_bands_are_tfds_examples(tfds_dir, tmp_path):
    name = "bigearthnet/all"
    mean, std = published_statistics(("B04", "B05", "B01"))
    config = config_for(name, tfds_dir[name], tmp_path, **{"bigearthnet.bands": "B04,B05,B01",
                                                           "data.channels": 3,
                                                           "data.mean": mean, "data.std": std})
    splits = loading.load_splits(config)
    records = {r.image_id: r for s in ("train", "val", "test") for r in splits.split(s)}
    builder = tfds.builder(name, data_dir=str(tfds_dir[name]))
    label_names = builder.info.features["labels"].feature.names
    examples = tfds_examples(tfds_dir[name], name, "train")
    assert len(records) == len(examples) == SIZES[name] + 1  # plus the demo's cloud patch
    for example in examples:
        record = records[example["filename"].decode()]
        merged = {TO_19[label_names[i]] for i in example["labels"]} - {None}
        assert record.label == tuple(int(label in merged) for label in LABELS_19)
    decoded = run.image_transform(config, augment=False).decoder.decode(
        next(iter(records.values())).path, 32)
    example = examples[int(next(iter(records.values())).path.rsplit("#", 1)[1])]
    np.testing.assert_array_equal(decoded[..., 0], example["B04"])  # 10 m: as stored
    np.testing.assert_allclose(decoded[::2, ::2, 1].mean(), example["B05"].mean(), rtol=0.05)
    assert decoded[..., 2].shape == (120, 120)  # the 60 m band upsampled from 20 x 20
    config.data.task = "labels43"  # the 43 CORINE labels as TFDS stores them, unmapped
    records43 = {r.image_id: r for s in ("train", "val", "test")
                 for r in loading.load_splits(config).split(s)}
    for example in examples:
        present = {label_names[i] for i in example["labels"]}
        assert records43[example["filename"].decode()].label == tuple(
            int(label in present) for label in LABELS_43)


def test_bigearthnet_official_lists_decide_the_splits(tfds_dir, tmp_path):
    name = "bigearthnet/rgb"
    examples = tfds_examples(tfds_dir[name], name, "train")
    names = sorted(e["filename"].decode() for e in examples)
    lists = tmp_path / "lists"
    lists.mkdir()
    for split, part in (("train", names[:6]), ("val", names[6:8]), ("test", names[8:10])):
        (lists / f"{split}.csv").write_text("\n".join(part) + "\n")
    config = config_for(name, tfds_dir[name], tmp_path,
                        **{"bigearthnet.split_dir": str(lists)})
    splits = loading.load_splits(config)
    assert [r.image_id for r in splits.val] == [n for n in
                                                 (e["filename"].decode() for e in examples)
                                                 if n in names[6:8]]
    assert len(splits.train) == 6 and len(splits.test) == 2  # 3 unlisted patches left out
    image = run.image_transform(config, augment=False).decoder.decode(splits.test[0].path, 32)
    index = int(splits.test[0].path.rsplit("#", 1)[1])
    np.testing.assert_array_equal(np.asarray(image), examples[index]["image"])
    (lists / "test.csv").write_text("S2A_MSIL2A_20170101T000000_1_1\n")
    with pytest.raises(DataError, match="1 patches of the lists .* are not in"):
        loading.load_splits(config)


def test_chexpert_observations_take_the_chest_policies(tfds_dir, tmp_path):
    name = "chexpert"
    config = config_for(name, tfds_dir[name], tmp_path, **{
        "data.task": "all", "chest.uncertain": "ones", "chest.empty": "mask",
        "chest.split": "official", "chest.view": "all"})
    splits = loading.load_splits(config)
    builder = tfds.builder(name, data_dir=str(tfds_dir[name]))
    classes = builder.info.features["label"].feature.names
    expected = {"uncertain": POSITIVE, "positive": POSITIVE, "negative": NEGATIVE,
                "unmentioned": MASKED}
    valid = tfds_examples(tfds_dir[name], name, "validation")
    assert len(splits.test) == len(valid)  # official: TFDS's validation is the test split
    for record, example in zip(splits.test, valid):
        assert record.image_id.endswith(example["name"].decode().split("/", 1)[1])
        want = [expected[classes[v]] for v in example["label"]]
        want[CHEXPERT_LABELS.index("No Finding")] = (
            NEGATIVE if classes[example["label"][0]] == "unmentioned" else want[0])
        assert record.label == tuple(want)
    image = run.image_transform(config, augment=False).decoder.decode(splits.test[0].path, 32)
    assert image.mode == "L"


def test_tfrecord_datasets_say_how_to_convert(tfds_dir, tmp_path):
    """A TFRecord-prepared dataset differs in its dataset_info.json (fileFormat) and shard
    names; preparing one needs TensorFlow, so the copy's info says tfrecord instead."""
    name = "diabetic_retinopathy_detection/btgraham-300"
    copy = shutil.copytree(tfds_dir[name], tmp_path / "tfrecord")
    info_path = next(copy.rglob("dataset_info.json"))
    info = json.loads(info_path.read_text())
    info["fileFormat"] = "tfrecord"
    info_path.write_text(json.dumps(info))
    with pytest.raises(DataError, match="was prepared as tfrecord.*tfds convert_format "
                                        "--dataset_version_dir=.*array_record"):
        loading.load_splits(config_for(name, copy, tmp_path))


def test_an_unprepared_dataset_says_how_to_prepare_it(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="bigearthnet/rgb is not prepared in .*tfds build "
                                        "bigearthnet/rgb --data_dir .*--file_format=array_record"):
        loading.load_splits(config_for("bigearthnet/rgb", empty, tmp_path))


def test_without_tensorflow_datasets_a_tfds_config_says_what_to_install(tmp_path, monkeypatch):
    config = tiny_config(tmp_path, "tfds")
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"needs the package tensorflow-datasets; install it "
                                          r"with pip install -e '.\[tfds\]'"):
        configuration.validate(config)


def test_a_tfds_name_with_another_dataset_is_a_config_error(tmp_path):
    config = tiny_config(tmp_path, "tfds:bigearthnet/rgb")
    config.data.tfds = "diabetic_retinopathy_detection/original"
    with pytest.raises(ConfigError, match="this config reads bigearthnet/rgb, bigearthnet/all"):
        configuration.validate(config)
    config = tiny_config(tmp_path, "eyepacs")
    config.data.tfds_dir = str(tmp_path)
    with pytest.raises(ConfigError, match="config.data.tfds_dir is .* but eyepacs reads its "
                                          "data from config.data.root"):
        configuration.validate(config)


@pytest.mark.slow
def test_retinopathy_trains_end_to_end_on_a_prepared_dataset(tfds_dir, tmp_path):
    name = "diabetic_retinopathy_detection/btgraham-300"
    config = config_for(name, tfds_dir[name], tmp_path, **{
        "train.epochs": 1, "eval.bootstrap_samples": 2, "data.train_per_class": 3})
    results = train.train_and_evaluate(config, tmp_path / "run")
    assert results["demo"] is False and results["dataset"] == "diabetic_retinopathy_detection"
    assert results["split_sizes"]["test"] == len(tfds_examples(tfds_dir[name], name, "test"))
    assert results["split_sizes"]["train"] <= 15  # at most 3 per grade
    assert {"kappa", "kappa_ci", "accuracy", "macro_f1"} <= set(results["test"])


@pytest.mark.slow
def test_bigearthnet_trains_end_to_end_on_its_demo(tmp_path):
    # 2 bootstrap resamples, not 10: each scores 19 labels with scikit-learn, and the test
    # only needs the intervals to be there
    config = tiny_config(tmp_path, "tfds:bigearthnet/all", {"demo.bootstrap_samples": 2})
    results = train.train_and_evaluate(config, tmp_path / "run")
    assert results["demo"] is True and results["task"]["names"] == list(LABELS_19)
    assert sum(results["split_sizes"].values()) == 13  # 12 listed patches + 1 cloud patch
    assert {"mean_ap", "mean_ap_ci", "micro_f1", "mean_auroc"} <= set(results["test"])
