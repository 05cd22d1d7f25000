"""Chest X-ray runs end to end on tiny demo data: every task kind trains and is scored, the
training set is written, and a CheXpert model is scored on ChestX-ray14."""

from __future__ import annotations

import csv
import json

import pytest
from conftest import tiny_config

from jaxtl.commands import evaluate
from jaxtl.core.errors import TransferError
from jaxtl.training import loop as train
from jaxtl.workdir import files as rundir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chexpert_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chexpert")
    config = tiny_config(tmp, "chexpert")
    config.data.task = "competition5"
    config.chest.uncertain_per_label = "Cardiomegaly=multiclass,Atelectasis=ones"
    config.data.train_per_class = 20
    config.train.positive_weights = "balanced"
    results = train.train_and_evaluate(config, tmp / "run")
    return tmp, results


def test_balanced_positive_weights_come_from_the_training_labels(chexpert_run):
    import ml_collections
    import numpy as np

    from jaxtl.data import loading

    tmp, results = chexpert_run
    config = ml_collections.ConfigDict(results["config"])
    train_labels = np.array([r.label for r in loading.load_splits(config).train])
    three_way = np.array(results["task"]["three_way"])
    positives = (train_labels == 1).sum(axis=0)
    counted = ((train_labels == 0) | (train_labels == 1)
               | ((train_labels == 2) & three_way)).sum(axis=0)
    expected = (counted - positives) / positives  # negatives / positives per label
    assert results["config"]["train"]["positive_weights"] == "balanced"
    np.testing.assert_allclose([results["loss_weights"][name] for name in
                                results["task"]["names"]], expected, rtol=1e-6)


def test_competition5_with_per_label_policies_reports_every_label(chexpert_run):
    tmp, results = chexpert_run
    assert results["task"]["names"] == ["Atelectasis", "Cardiomegaly", "Consolidation",
                                        "Edema", "Pleural Effusion"]
    assert results["task"]["three_way"] == [False, True, False, False, False]
    test = results["test"]
    assert set(test["auroc"]) == set(results["task"]["names"])
    low, high = test["mean_auroc_ci"]
    assert low <= test["mean_auroc"] <= high
    assert test["bootstrap_samples"] == 20


def test_the_training_images_and_patients_are_written(chexpert_run):
    tmp, results = chexpert_run
    with (tmp / "run" / rundir.TRAIN_IMAGES_FILE).open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == results["split_sizes"]["train"]
    assert all(row["image_id"].startswith(("train/patient", "valid/patient")) for row in rows)
    assert all(row["patient"] in row["image_id"] for row in rows)


def test_hierarchical_task_trains_and_scores_products(tmp_path):
    config = tiny_config(tmp_path, "chexpert")
    config.data.task = "hierarchical"
    config.chest.uncertain = "ones"
    results = train.train_and_evaluate(config, tmp_path / "run")
    assert results["task"]["parents"][results["task"]["names"].index("Pneumonia")] == \
        results["task"]["names"].index("Consolidation")
    assert results["val"]["mean_auroc"] is not None


def test_a_chexpert_model_is_scored_on_cxr14_through_the_mapping(chexpert_run, tmp_path):
    tmp, _ = chexpert_run
    config = tiny_config(tmp_path, "cxr14")
    config.data.task = "competition5"
    config.chest.uncertain_per_label = "Cardiomegaly=multiclass"
    results = evaluate.evaluate_checkpoint(config, tmp / "run", tmp_path / "eval")
    assert results["trained_on"] == "chexpert" and results["dataset"] == "cxr14"
    saved = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert set(saved["test"]["auroc"]) == {"Atelectasis", "Cardiomegaly", "Consolidation",
                                           "Edema", "Pleural Effusion"}
    # what the program prints: a row per metric, the val and test values with intervals
    lines = evaluate.results_table(results).splitlines()
    assert lines[0].split() == ["metric", "val", "[95%", "CI]", "test", "[95%", "CI]"]
    rows = {line.split("  ")[0]: line for line in lines[2:]}
    for split in ("val", "test"):
        value, (low, high) = saved[split]["mean_auroc"], saved[split]["mean_auroc_ci"]
        assert f"{value:.3f} [{low:.3f}, {high:.3f}]" in rows["mean_auroc"]
    edema, (low, high) = saved["test"]["auroc"]["Edema"], saved["test"]["auroc_ci"]["Edema"]
    assert rows["auroc.Edema"].endswith(f"{edema:.3f} [{low:.3f}, {high:.3f}]")
    config = tiny_config(tmp_path, "cxr14")
    config.data.task = "all"
    with pytest.raises(TransferError, match="set --config.data.task to the run's labels"):
        evaluate.evaluate_checkpoint(config, tmp / "run", tmp_path / "eval2")


def test_the_test_labels_are_the_same_whatever_the_training_policy(chexpert_run):
    import numpy as np

    from jaxtl.data import loading

    tmp, results = chexpert_run
    assert results["label_policies"]["eval_uncertain"] == "mask"
    with np.load(tmp / "run" / "predictions_test.npz") as saved:
        scored = saved["labels"]
    for policy in ("zeros", "ones"):  # U-Zeros and U-Ones runs would be scored on these
        config = tiny_config(tmp, "chexpert")
        config.data.task = "competition5"
        config.chest.uncertain = policy
        config.chest.uncertain_per_label = ""
        test = loading.load_splits(config).test
        np.testing.assert_array_equal(np.array([r.label for r in test]), scored)
