"""Multi-label metrics against scikit-learn; masks, three-way and hierarchical scores; CIs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, softmax
from sklearn import metrics as skm

from jaxtl.core import tasks
from jaxtl.metrics import task_metrics

NAMES = ("a", "b", "c")


def noisy_multilabel(n=300, seed=0):
    rng = np.random.default_rng(seed)
    labels = (rng.uniform(size=(n, 3)) < [0.3, 0.5, 0.1]).astype(np.int64)
    logits = rng.normal(size=(n, 3)) + 2.0 * (labels - 0.5)
    return labels, logits


def test_unmasked_multilabel_metrics_equal_scikit_learn():
    labels, logits = noisy_multilabel()
    result = task_metrics(tasks.multilabel(NAMES), labels, logits)
    scores = expit(logits)
    for i, name in enumerate(NAMES):
        assert result["auroc"][name] == pytest.approx(skm.roc_auc_score(labels[:, i], scores[:, i]))
        assert result["ap"][name] == pytest.approx(
            skm.average_precision_score(labels[:, i], scores[:, i]))
    assert result["mean_auroc"] == pytest.approx(skm.roc_auc_score(labels, scores, average="macro"))
    assert result["mean_ap"] == pytest.approx(
        skm.average_precision_score(labels, scores, average="macro"))
    assert result["micro_ap"] == pytest.approx(
        skm.average_precision_score(labels, scores, average="micro"))
    predictions = scores >= 0.5
    assert result["micro_f1"] == pytest.approx(skm.f1_score(labels, predictions, average="micro"))
    assert result["macro_f1"] == pytest.approx(skm.f1_score(labels, predictions, average="macro"))
    bce = np.logaddexp(0, logits) - labels * logits
    assert result["loss"] == pytest.approx(bce.mean())


def test_masked_entries_are_left_out_of_each_label():
    labels, logits = noisy_multilabel()
    masked = labels.copy()
    masked[::3, 0] = tasks.MASKED
    masked[1::4, 1] = tasks.MASKED
    result = task_metrics(tasks.multilabel(NAMES), masked, logits)
    for i, name in enumerate(NAMES):
        keep = masked[:, i] != tasks.MASKED
        assert result["auroc"][name] == pytest.approx(
            skm.roc_auc_score(labels[keep, i], expit(logits[keep, i])))


def test_a_label_with_one_class_has_no_auroc_and_is_left_out_of_the_mean():
    labels, logits = noisy_multilabel()
    labels[:, 2] = 0
    result = task_metrics(tasks.multilabel(NAMES), labels, logits)
    assert result["auroc"]["c"] is None and result["ap"]["c"] is None
    assert result["mean_auroc"] == pytest.approx(
        np.mean([result["auroc"]["a"], result["auroc"]["b"]]))


def test_three_way_label_is_scored_p1_over_p0_plus_p1_and_uncertain_is_not_counted():
    task = tasks.multilabel(["x", "y"], three_way=[True, False])
    assert task.num_outputs == 4
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(50, 4))
    labels = np.stack([rng.integers(0, 3, 50), rng.integers(0, 2, 50)], axis=1)
    p = softmax(logits[:, :3], axis=1)
    expected = p[:, 1] / (p[:, 0] + p[:, 1])
    np.testing.assert_allclose(task.scores(logits)[:, 0], expected)
    np.testing.assert_allclose(task.scores(logits)[:, 1], expit(logits[:, 3]))
    result = task_metrics(task, labels, logits)
    keep = labels[:, 0] != tasks.UNCERTAIN
    assert result["auroc"]["x"] == pytest.approx(
        skm.roc_auc_score(labels[keep, 0], expected[keep]))


def test_hierarchical_scores_are_products_along_the_path():
    # opacity -> consolidation -> pneumonia; cardiomegaly alone
    task = tasks.multilabel(["opacity", "consolidation", "pneumonia", "cardiomegaly"],
                            parents=[-1, 0, 1, -1])
    logits = np.array([[0.3, -1.0, 2.0, 0.5]])
    p = expit(logits[0])
    np.testing.assert_allclose(task.scores(logits)[0],
                               [p[0], p[0] * p[1], p[0] * p[1] * p[2], p[3]])


def test_bootstrap_intervals_resample_patients_and_bracket_the_estimate():
    labels, logits = noisy_multilabel(n=200)
    groups = [f"p{i // 4}" for i in range(200)]  # 4 images per patient
    result = task_metrics(tasks.multilabel(NAMES), labels, logits, groups,
                          bootstrap_samples=60, seed=0)
    low, high = result["mean_auroc_ci"]
    assert low < result["mean_auroc"] < high and high - low < 0.25
    low_a, high_a = result["auroc_ci"]["a"]
    assert low_a < result["auroc"]["a"] < high_a
    again = task_metrics(tasks.multilabel(NAMES), labels, logits, groups,
                         bootstrap_samples=60, seed=0)
    assert again["mean_auroc_ci"] == result["mean_auroc_ci"]


def test_patient_resampling_equals_duplicating_images():
    # A weighted sklearn call (what the bootstrap does) equals the call on duplicated rows.
    labels, logits = noisy_multilabel(n=40)
    weights = np.random.default_rng(3).integers(0, 3, 40)
    task = tasks.multilabel(NAMES)
    from jaxtl.metrics import metric_function

    weighted = metric_function(task, labels, expit(logits))(weights)
    rows = np.repeat(np.arange(40), weights)
    plain = metric_function(task, labels[rows], expit(logits[rows]))(None)
    for key in ("mean_auroc", "mean_ap", "micro_f1", "macro_f1", "micro_ap", "mean_ece"):
        assert weighted[key] == pytest.approx(plain[key])


def test_multiclass_intervals_cover_accuracy_and_kappa():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 300)
    logits = rng.normal(size=(300, 5)) + 2.0 * np.eye(5)[labels]
    result = task_metrics(tasks.multiclass("01234"), labels, logits,
                          [str(i // 2) for i in range(300)], bootstrap_samples=50)
    for name in ("accuracy", "kappa", "macro_f1"):
        low, high = result[f"{name}_ci"]
        assert low <= result[name] <= high
    assert result["macro_f1"] == pytest.approx(
        skm.f1_score(labels, logits.argmax(1), average="macro"))
