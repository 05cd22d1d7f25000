"""Your own data (jaxtl/data/table/): tables and class folders -> tasks, labels, splits; every
kind of bad input is one message naming the file and the row; 16-bit images keep their range."""

from __future__ import annotations

import logging
import math
import pathlib

import numpy as np
import pytest
from conftest import tiny_config
from layouts.table import KINDS, suffix, write_image, write_table
from PIL import Image

from jaxtl.config import validation as configuration
from jaxtl.core import tasks
from jaxtl.core.errors import ConfigError, DataError
from jaxtl.data import loading
from jaxtl.data.decoders import DeepImageDecoder, ImageFileDecoder

CLASSES = ("normal", "benign", "malignant")
PATIENTS = 12  # two images each


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> pathlib.Path:
    """data/img/<n>.png for two images of each of 12 patients (RGB PNG)."""
    folder = tmp_path_factory.mktemp("own")
    for n in range(2 * PATIENTS):
        write_image(folder / "data" / "img" / f"{n}.png", "rgb_png", n)
    return folder / "data"


def rows_of(images: pathlib.Path, *, absolute_every: int = 0) -> list[list[object]]:
    """path, label, patient, split, two label columns; image n belongs to patient n // 2."""
    rows = []
    for n in range(2 * PATIENTS):
        path = images / "img" / f"{n}.png" if absolute_every and n % absolute_every == 0 \
            else f"img/{n}.png"
        split = "test" if n // 2 >= 10 else "train"
        effusion = ("1", "0", "-1", "")[n % 4]
        rows.append([path, CLASSES[n % 3], f"p{n // 2}", split, effusion, ("0", "1")[n % 2]])
    return rows


HEADER = ("path", "label", "patient", "split", "Effusion", "Edema")


def csv_config(folder: pathlib.Path, table: pathlib.Path, **overrides):
    return tiny_config(folder, "csv", {"data.root": str(table), **overrides})


def load(config):
    configuration.validate(config)
    return loading.load_splits(config)


def test_classes_paths_and_groups(images, tmp_path):
    table = write_table(images / "a.csv", HEADER, rows_of(images, absolute_every=5))
    splits = load(csv_config(tmp_path, table))
    assert splits.task == tasks.multiclass(sorted(CLASSES))  # class names found, sorted
    records = {r.image_id: r for name in ("train", "val", "test") for r in splits.split(name)}
    assert len(records) == 2 * PATIENTS
    first = records["img/1.png"]
    assert first.path == str(images / "img" / "1.png") and first.patient == "p0"
    assert first.label == sorted(CLASSES).index(CLASSES[1])
    assert str(images / "img" / "0.png") in records  # an absolute path is its own id
    patients = [{r.patient for r in splits.split(name)} for name in ("train", "val", "test")]
    assert not (patients[0] & patients[1] or patients[0] & patients[2]
                or patients[1] & patients[2])


def test_configured_classes_keep_their_order_and_integers_sort_as_numbers(images, tmp_path):
    table = write_table(images / "b.csv", HEADER, rows_of(images))
    splits = load(csv_config(tmp_path, table, **{"csv.classes": ",".join(CLASSES)}))
    assert splits.task.names == CLASSES
    grades = [[f"img/{n}.png", (2, 10, 9)[n % 3], f"p{n // 2}"] for n in range(24)]
    table = write_table(images / "grades.csv", ("path", "label", "patient"), grades)
    assert load(csv_config(tmp_path, table)).task.names == ("2", "9", "10")


def test_train_per_class_caps_each_class_of_a_table(images, tmp_path):
    table = write_table(images / "capped.csv", HEADER, rows_of(images))
    full = load(csv_config(tmp_path, table))
    capped = load(csv_config(tmp_path, table, **{"data.train_per_class": 2}))
    counts = {name: sum(r.label == i for r in full.train) for i, name in
              enumerate(full.task.names)}
    assert min(counts.values()) > 2  # the cap bites for every class
    assert [sum(r.label == i for r in capped.train) for i in range(3)] == [2, 2, 2]
    assert {r.image_id for r in capped.train} <= {r.image_id for r in full.train}
    assert capped.test == full.test and capped.val == full.val


def test_a_fixed_split_column_is_kept_and_val_drawn_from_train_by_group(images, tmp_path):
    table = write_table(images / "c.csv", HEADER, rows_of(images))
    splits = load(csv_config(tmp_path, table, **{"csv.split_column": "split",
                                                 "data.val_fraction": 0.2}))
    assert {r.image_id for r in splits.test} == {f"img/{n}.png" for n in range(20, 24)}
    val_patients = {r.patient for r in splits.val}
    assert len(val_patients) == 2  # round(0.2 * 10 training patients)
    assert not val_patients & {r.patient for r in splits.train}


def test_without_groups_images_are_split_one_by_one_with_a_warning(images, tmp_path, caplog):
    table = write_table(images / "d.csv", ("path", "label"),
                        [[f"img/{n}.png", CLASSES[n % 3]] for n in range(24)])
    with caplog.at_level(logging.WARNING):
        splits = load(csv_config(tmp_path, table, **{"csv.group_column": ""}))
    assert "no group (patient) per image" in caplog.text
    assert all(r.patient == r.image_id for r in splits.train)


def expected_label(cell: str, policy: str, empty: str) -> int:
    """The chest policies, written out independently of jaxtl."""
    if cell == "":
        return 0 if empty == "negative" else -1
    value = int(cell)
    if value == -1:
        return {"ignore": -1, "zeros": 0, "ones": 1, "multiclass": 2}[policy]
    return value


@pytest.mark.parametrize("uncertain, empty, eval_uncertain",
                         [("ignore", "negative", "mask"), ("ones", "mask", "zeros"),
                          ("multiclass", "negative", "mask")])
def test_label_columns_take_the_chest_policies(images, tmp_path, uncertain, empty,
                                               eval_uncertain):
    """Training rows follow the training policies, validation and test rows the evaluation
    policy (`mask`: uncertain cells left out), whatever the training policy."""
    rows = rows_of(images)
    table = write_table(images / "e.csv", HEADER, rows)
    splits = load(csv_config(tmp_path, table, **{
        "data.task": "labels", "eval.best_metric": "mean_auroc",
        "csv.label_columns": "Effusion,Edema", "csv.uncertain": uncertain,
        "csv.empty": empty, "csv.uncertain_per_label": "Edema=zeros",
        "csv.eval_uncertain": eval_uncertain}))
    assert splits.task.names == ("Effusion", "Edema")
    assert splits.task.three_way == (uncertain == "multiclass", False)
    assert splits.label_policies["eval_uncertain"] == eval_uncertain
    split_of = {r.image_id: name for name in ("train", "val", "test") for r in splits.split(name)}
    got = {r.image_id: r.label for name in ("train", "val", "test") for r in splits.split(name)}
    as_encoding = {"mask": "ignore", "zeros": "zeros", "ones": "ones"}[eval_uncertain]
    for row in rows:
        if split_of[row[0]] == "train":
            policies = (uncertain, "zeros")
        else:
            policies = (as_encoding, as_encoding)
        assert got[row[0]] == tuple(expected_label(cell, policy, empty)
                                    for cell, policy in zip(row[4:6], policies))
    assert any("-1" in row[4:6] and split_of[row[0]] != "train" for row in rows)


BAD_INPUT = {
    "a path that does not exist": (
        lambda rows: rows[5].__setitem__(0, "img/nowhere.png"), {}, r"line 7: img/nowhere.png "
        r"does not exist .*1 of the 24 images"),
    "an unknown class": (
        lambda rows: rows[3].__setitem__(1, "cyst"), {"csv.classes": ",".join(CLASSES)},
        r"line 5: class 'cyst' is not one of the configured classes"),
    "a label value outside 1/0/-1/empty": (
        lambda rows: rows[8].__setitem__(4, "2"),
        {"data.task": "labels", "eval.best_metric": "mean_auroc",
         "csv.label_columns": "Effusion,Edema"},
        r"line 10: column 'Effusion' holds '2'; label cells are 1, 0, -1"),
    "a missing column": (
        lambda rows: None, {"csv.group_column": "subject"},
        r"no column 'subject' \(csv.group_column\); the header names 'path', 'label'"),
    "a group split across a fixed split column": (
        lambda rows: rows[21].__setitem__(3, "train"), {"csv.split_column": "split"},
        r"line 22 puts group 'p10' in test, .*line 23 in train: a group's images must share"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_names_the_file_and_the_row(images, tmp_path, case):
    spoil, overrides, message = BAD_INPUT[case]
    rows = rows_of(images)
    spoil(rows)
    table = write_table(images / f"bad-{list(BAD_INPUT).index(case)}.csv", HEADER, rows)
    with pytest.raises(DataError, match=message) as caught:
        load(csv_config(tmp_path, table, **overrides))
    assert str(table) in str(caught.value)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_image_file_decodes_with_its_range(tmp_path, kind):
    path = tmp_path / f"image{suffix(kind)}"
    pixels = write_image(path, kind, seed=3)
    deep = DeepImageDecoder(channels=1).decode(str(path), 16)
    assert deep.dtype == np.uint16 and deep.shape == (20, 24, 1)
    if kind.startswith("grey16"):  # 16-bit values kept exactly
        np.testing.assert_array_equal(deep[..., 0], pixels)
        with pytest.raises(DataError, match="more than 8 bits per pixel.*bit_depth=16"):
            ImageFileDecoder(1).decode(str(path), 16)
    else:  # 8-bit files on the same 0..65535 scale: 255 -> 65535
        grey = np.asarray(Image.open(path).convert("L"), np.uint16)
        np.testing.assert_array_equal(deep[..., 0], grey * 257)
        assert np.asarray(ImageFileDecoder(3).decode(str(path), 16)).shape == (20, 24, 3)
    assert DeepImageDecoder(channels=3).decode(str(path), 16).shape == (20, 24, 3)


def test_class_folders(tmp_path):
    root = tmp_path / "folders"
    for n in range(18):
        kind = KINDS[n % len(KINDS)]
        write_image(root / CLASSES[n % 3] / f"sub{n % 2}" / f"{n}{suffix(kind)}", kind, n)
    (root / "benign" / "notes.txt").write_text("not an image")
    config = tiny_config(tmp_path, "folders", {"data.root": str(root),
                                               "folders.bit_depth": 16,
                                               "data.channels": 1, "data.mean": (0.5,),
                                               "data.std": (0.25,)})
    splits = load(config)
    assert splits.task.names == tuple(sorted(CLASSES))
    records = [r for name in ("train", "val", "test") for r in splits.split(name)]
    assert len(records) == 18  # notes.txt left out
    assert all(r.label == sorted(CLASSES).index(r.image_id.split("/")[0]) for r in records)
    config.folders.classes = "normal,benign"
    with pytest.raises(DataError, match=r"malignant/sub\d/\d+\.\w+: class 'malignant' is not "
                                        r"one of the configured classes"):
        load(config)


def test_config_rules_of_your_own_data(images, tmp_path):
    table = write_table(images / "f.csv", HEADER, rows_of(images))
    config = csv_config(tmp_path, table, **{"eval.best_metric": "kappa"})
    with pytest.raises(ConfigError, match="set csv.ordinal=True if the classes are ordered"):
        configuration.validate(config)
    config.csv.ordinal = True
    configuration.validate(config)
    config.eval.best_metric = "mean_auroc"
    with pytest.raises(ConfigError, match="with data.task=classes choose one of accuracy"):
        configuration.validate(config)
    config.eval.best_metric = "accuracy"
    config.data.tfds = "bigearthnet/rgb"
    with pytest.raises(ConfigError, match="config.dataset is 'csv', which is not read from "
                                          "TensorFlow Datasets"):
        configuration.validate(config)


def test_the_demo_tables_hold_every_column_the_configs_name(tmp_path):
    config = tiny_config(tmp_path, "csv:labels")
    splits = load(config)
    assert splits.demo and splits.task.names == ("referable", "proliferative")
    values = np.asarray([r.label for r in splits.train])
    assert (values == tasks.MASKED).any() and (values == tasks.POSITIVE).any()
    assert not math.isnan(values.mean())


def test_32_bit_integer_images_are_read_when_their_values_fit_16_bits(tmp_path):
    """Some Pillow versions open 16-bit PNGs as 32-bit integers ('I')."""
    fits, wide = tmp_path / "fits.tif", tmp_path / "wide.tif"
    Image.fromarray(np.array([[0, 60000]], np.int32), "I").save(fits)
    Image.fromarray(np.array([[0, 70000]], np.int32), "I").save(wide)
    assert DeepImageDecoder().decode(str(fits), 8).ravel().tolist() == [0, 60000]
    with pytest.raises(DataError, match="wide.tif is a I image with values outside 0..65535"):
        DeepImageDecoder().decode(str(wide), 8)
