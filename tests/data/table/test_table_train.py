"""Your own data trained end to end: a table of 16-bit grey radiographs with patients and a
fixed split column, a multi-label table with uncertain and empty cells and no patients, and
class folders of mixed image files."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny_config
from layouts.table import KINDS, suffix, write_image, write_table

from jaxtl.training import loop as train

pytestmark = pytest.mark.slow
GREY = {"data.channels": 1, "data.mean": (0.5,), "data.std": (0.25,)}
# 2 bootstrap resamples: each rescores the test split with scikit-learn; the tests only need
# the intervals to be there
ONE_EPOCH = {"train.epochs": 1, "eval.bootstrap_samples": 2}


def test_a_table_of_16_bit_radiographs_with_patients_and_a_split_column(tmp_path):
    rows = []
    for n in range(32):
        kind = ("grey16_png", "grey16_tiff")[n % 2]
        write_image(tmp_path / "xr" / f"{n}{suffix(kind)}", kind, n)
        split = ("train", "train", "valid", "test")[(n // 2) % 4]
        rows.append([f"xr/{n}{suffix(kind)}", ("0", "1", "2")[n % 3], f"p{n // 2}", split])
    table = write_table(tmp_path / "table.csv", ("image", "grade", "patient", "split"), rows)
    config = tiny_config(tmp_path, "csv", {
        "data.root": str(table), "csv.path_column": "image", "csv.class_column": "grade",
        "csv.split_column": "split", "csv.bit_depth": 16, "csv.ordinal": True,
        "eval.best_metric": "kappa", **GREY, **ONE_EPOCH})
    results = train.train_and_evaluate(config, tmp_path / "run")
    assert results["demo"] is False and results["task"]["names"] == ["0", "1", "2"]
    assert results["split_sizes"] == {"train": 16, "val": 8, "test": 8}
    assert {"kappa", "kappa_ci", "accuracy", "macro_f1"} <= set(results["test"])


def test_a_multi_label_table_with_uncertain_cells_and_no_patients(tmp_path):
    rows = []
    rng = np.random.default_rng(0)
    for n in range(40):
        kind = KINDS[n % 3]  # RGB PNG, RGB JPEG, 8-bit grey PNG
        write_image(tmp_path / f"{n}{suffix(kind)}", kind, n)
        rows.append([f"{n}{suffix(kind)}", *rng.choice(["1", "0", "-1", ""], size=2)])
    table = write_table(tmp_path / "labels.csv", ("path", "Effusion", "Nodule"), rows)
    config = tiny_config(tmp_path, "csv:labels", {
        "data.root": str(table), "csv.label_columns": "Effusion,Nodule",
        "csv.group_column": "", "csv.uncertain_per_label": "Nodule=multiclass",
        "csv.empty": "mask", **ONE_EPOCH})
    results = train.train_and_evaluate(config, tmp_path / "run")
    assert results["task"]["names"] == ["Effusion", "Nodule"]
    assert results["task"]["three_way"] == [False, True]
    assert sum(results["split_sizes"].values()) == 40
    assert {"mean_auroc", "mean_ap", "micro_f1"} <= set(results["test"])


def test_class_folders_train(tmp_path):
    root = tmp_path / "folders"
    for n in range(30):
        kind = KINDS[n % 3]
        write_image(root / ("cat", "dog")[n % 2] / f"{n}{suffix(kind)}", kind, n)
    config = tiny_config(tmp_path, "folders", {"data.root": str(root), **ONE_EPOCH})
    results = train.train_and_evaluate(config, tmp_path / "run")
    assert results["task"]["names"] == ["cat", "dog"]
    assert sum(results["split_sizes"].values()) == 30
