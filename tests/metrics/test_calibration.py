"""ECE and reliability bins against the formula written out bin by bin; ECE in the task metrics;
the Brier score against its formula; temperature scaling against scipy's minimiser of the
log-loss written out here, on a deliberately overconfident model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.special import expit, softmax
from sklearn.metrics import roc_auc_score

from jaxtl.core import tasks
from jaxtl.metrics import task_metrics, temperature
from jaxtl.metrics.calibration import (
    brier_score,
    expected_calibration_error,
    reliability,
    task_brier,
)
from jaxtl.metrics.temperature import BOUNDS


def ece_by_definition(confidence, outcome, bins=15):
    """Guo et al. (2017): bins ((m-1)/M, m/M], |acc - conf| weighted by the bin's share."""
    total = 0.0
    for m in range(1, bins + 1):
        low, high = (m - 1) / bins, m / bins
        inside = [(c, o) for c, o in zip(confidence, outcome)
                  if low < c <= high or (m == 1 and c == 0.0)]
        if inside:
            conf = sum(c for c, _ in inside) / len(inside)
            acc = sum(o for _, o in inside) / len(inside)
            total += len(inside) / len(confidence) * abs(acc - conf)
    return total


def test_ece_equals_its_definition_including_bin_edges():
    rng = np.random.default_rng(0)
    confidence = np.concatenate([rng.uniform(size=300), [0.0, 1.0, 1 / 15, 2 / 15, 14 / 15]])
    outcome = rng.uniform(size=len(confidence)) < confidence ** 1.5
    assert expected_calibration_error(confidence, outcome) == pytest.approx(
        ece_by_definition(confidence, outcome))
    table = reliability(confidence, outcome)
    assert table.weight.sum() == len(confidence)
    assert table.weight[0] == np.sum(confidence <= 1 / 15)  # 0 and 1/15 land in the first bin


def test_weights_equal_duplicated_entries():
    rng = np.random.default_rng(1)
    confidence, outcome = rng.uniform(size=50), rng.integers(0, 2, 50)
    weight = rng.integers(0, 3, 50)
    rows = np.repeat(np.arange(50), weight)
    assert expected_calibration_error(confidence, outcome, weight) == pytest.approx(
        ece_by_definition(confidence[rows], outcome[rows]))


def test_task_ece_is_top_label_for_softmax_and_per_label_for_multilabel():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, 200)
    logits = rng.normal(size=(200, 4)) + 1.5 * np.eye(4)[labels]
    probabilities = softmax(logits, axis=1)
    result = task_metrics(tasks.multiclass("abcd"), labels, logits)
    assert result["ece"] == pytest.approx(ece_by_definition(
        probabilities.max(1), probabilities.argmax(1) == labels))

    multilabel = (rng.uniform(size=(200, 2)) < 0.4).astype(np.int64)
    multilabel[::5, 1] = tasks.MASKED
    logits = rng.normal(size=(200, 2)) + 2 * (multilabel - 0.5)
    result = task_metrics(tasks.multilabel(["x", "y"]), multilabel, logits)
    expected = []
    for i, name in enumerate(["x", "y"]):
        keep = multilabel[:, i] != tasks.MASKED
        expected.append(ece_by_definition(expit(logits[keep, i]), multilabel[keep, i] == 1))
        assert result["ece"][name] == pytest.approx(expected[-1])
    assert result["mean_ece"] == pytest.approx(np.mean(expected))


# --- Brier score ------------------------------------------------------------------------------
def test_brier_equals_its_definition_per_task_kind():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, 100)
    probabilities = softmax(rng.normal(size=(100, 3)), axis=1)
    onehot = np.eye(3)[labels]
    assert task_brier(tasks.multiclass("abc"), labels, probabilities)["brier"] == pytest.approx(
        np.mean(np.sum((probabilities - onehot) ** 2, axis=1)))

    multilabel = rng.integers(0, 2, (100, 2))
    multilabel[::4, 0] = tasks.MASKED
    multilabel[:, 1] = tasks.MASKED  # no counted entry: no Brier score, left out of the mean
    scores = rng.uniform(size=(100, 2))
    keep = multilabel[:, 0] != tasks.MASKED
    expected = np.mean((scores[keep, 0] - multilabel[keep, 0]) ** 2)
    result = task_brier(tasks.multilabel(["x", "y"]), multilabel, scores)
    assert result["brier"] == {"x": pytest.approx(expected), "y": None}
    assert result["mean_brier"] == pytest.approx(expected)
    weight = rng.integers(0, 3, 100)
    rows = np.repeat(np.arange(100), weight)
    assert brier_score(scores[:, 0], multilabel[:, 0] == 1, weight) == pytest.approx(
        np.mean((scores[rows, 0] - (multilabel[rows, 0] == 1)) ** 2))


# --- temperature scaling ----------------------------------------------------------------------
def softmax_log_loss(logits, target, t):
    """-mean log softmax(logits / t)[target], written out."""
    z = np.asarray(logits, np.float64) / t
    top = z.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(z - top).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(len(z)), target]))


def sigmoid_log_loss(z, y, t):
    """-mean [y log s(z / t) + (1 - y) log(1 - s(z / t))], written out."""
    p = 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64) / t))
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def scipy_temperature(loss):
    """scipy's minimiser of a log-loss over log T (the same bounds as jaxtl's search)."""
    found = minimize_scalar(lambda log_t: loss(np.exp(log_t)), bounds=np.log(BOUNDS),
                            method="bounded", options={"xatol": 1e-10})
    return float(np.exp(found.x))


def overconfident(rng, n, classes, sharpen):
    """Labels drawn from softmax(z), logits reported as sharpen * z: a model whose confidences
    are too high by the temperature `sharpen`."""
    z = rng.normal(size=(n, classes)) * 1.5
    labels = np.array([rng.choice(classes, p=p) for p in softmax(z, axis=1)])
    return labels, sharpen * z


def test_multiclass_fit_equals_scipys_minimiser_of_the_validation_log_loss():
    rng = np.random.default_rng(4)
    labels, logits = overconfident(rng, 400, 4, sharpen=3.0)
    (fitted,) = temperature.fit(tasks.multiclass("abcd"), labels, logits)
    expected = scipy_temperature(lambda t: softmax_log_loss(logits, labels, t))
    assert fitted == pytest.approx(expected, rel=1e-6)
    assert 2.0 < fitted < 4.5  # recovers the sharpening roughly
    assert softmax_log_loss(logits, labels, fitted) <= softmax_log_loss(logits, labels, expected)


def test_multilabel_fit_is_per_head_over_the_entries_each_head_is_trained_on():
    """A binary label with masked entries, a three-way label (softmax over its three logits,
    uncertain entries counted) and a child trained only where its parent is positive."""
    rng = np.random.default_rng(5)
    n = 300
    three = tasks.multilabel(["binary", "three"], three_way=[False, True])
    labels = np.stack([rng.integers(0, 2, n), rng.integers(0, 3, n)], axis=1)
    labels[::7, 0] = tasks.MASKED
    labels[::9, 1] = tasks.MASKED
    logits = rng.normal(size=(n, 4)) * 2
    logits[:, 0] += 3 * (labels[:, 0] == 1) - 1.5
    logits[np.arange(n), 1 + np.clip(labels[:, 1], 0, 2)] += 2.5
    keep0, keep1 = labels[:, 0] >= 0, labels[:, 1] >= 0
    expected = [
        scipy_temperature(lambda t: sigmoid_log_loss(logits[keep0, 0], labels[keep0, 0], t)),
        scipy_temperature(lambda t: softmax_log_loss(logits[keep1, 1:], labels[keep1, 1], t))]
    assert temperature.fit(three, labels, logits) == pytest.approx(expected, rel=1e-6)

    tree = tasks.multilabel(["parent", "child"], parents=[-1, 0])
    labels = rng.integers(0, 2, (n, 2))
    logits = rng.normal(size=(n, 2)) * 4 + 2 * (labels - 0.5)
    counted = labels[:, 0] == 1
    expected = [
        scipy_temperature(lambda t: sigmoid_log_loss(logits[:, 0], labels[:, 0], t)),
        scipy_temperature(lambda t: sigmoid_log_loss(logits[counted, 1], labels[counted, 1], t))]
    assert temperature.fit(tree, labels, logits) == pytest.approx(expected, rel=1e-6)
    assert temperature.to_json(tree, temperature.fit(tree, labels, logits)) == {
        "parent": pytest.approx(expected[0], rel=1e-6), "child": pytest.approx(expected[1],
                                                                               rel=1e-6)}


def test_fit_at_the_edges():
    # Every validation entry on the right side: the log-loss falls as T -> 0, T stays at the bound.
    assert temperature.fit_temperature(np.array([[0.0, 1.0], [0.0, -2.0]]),
                                       np.array([1, 0])) == BOUNDS[0]
    # Every entry on the wrong side: the loss falls as T grows.
    assert temperature.fit_temperature(np.array([[0.0, 1.0], [0.0, -2.0]]),
                                       np.array([0, 1])) == BOUNDS[1]
    # Logits that do not depend on the image class: nothing to fit, T = 1.
    assert temperature.fit_temperature(np.zeros((3, 2)), np.array([0, 1, 0])) == 1.0
    task = tasks.multilabel(["x", "y"])
    labels = np.array([[1, tasks.MASKED], [0, tasks.MASKED], [1, tasks.MASKED]])
    fitted = temperature.fit(task, labels, np.array([[2.0, 1.0], [1.0, 0.0], [-1.0, 3.0]]))
    assert fitted[1] is None  # no counted entry for y: left unscaled
    np.testing.assert_array_equal(
        temperature.scale_logits(task, np.ones((2, 2)), fitted)[:, 1], [1.0, 1.0])


@pytest.mark.parametrize("classes", [2, 3])
def test_scaling_an_overconfident_softmax_model_lowers_ece_and_keeps_the_argmax(classes):
    rng = np.random.default_rng(6)
    task = tasks.multiclass("abc"[:classes])
    labels, logits = overconfident(rng, 1200, classes, sharpen=4.0)
    val, test = slice(0, 600), slice(600, None)
    (fitted,) = temperature.fit(task, labels[val], logits[val])
    assert 2.5 < fitted < 6
    scaled = temperature.scale_logits(task, logits[test], [fitted])
    before, after = task_metrics(task, labels[test], logits[test]), task_metrics(
        task, labels[test], scaled)
    calibrated = temperature.calibrated(task, labels[test], logits[test], [fitted])
    assert calibrated["calibrated_ece"] < before["ece"] / 2
    assert calibrated["calibrated_ece"] == pytest.approx(after["ece"])
    assert calibrated["calibrated_loss"] == pytest.approx(after["loss"])
    assert after["loss"] < before["loss"]
    assert calibrated["calibrated_brier"] < task_brier(
        task, labels[test], task.scores(logits[test]))["brier"]
    for key in ("accuracy", "kappa", "macro_f1", "recall", "confusion_matrix"):
        assert after[key] == before[key], key
    if classes == 2:  # P(class 1) = sigmoid((z1 - z0) / T): its ranking, hence AUROC, holds
        assert roc_auc_score(labels[test], task.scores(scaled)[:, 1]) == pytest.approx(
            roc_auc_score(labels[test], task.scores(logits[test])[:, 1]), abs=1e-12)


def test_scaling_an_overconfident_multilabel_model_lowers_ece_and_keeps_each_labels_ranks():
    rng = np.random.default_rng(6)
    task = tasks.multilabel(["x", "y"])
    z = rng.normal(size=(1200, 2)) * 1.5
    labels = (rng.uniform(size=z.shape) < expit(z)).astype(np.int64)
    logits = z * np.array([4.0, 2.0])  # two heads, overconfident by different temperatures
    val, test = slice(0, 600), slice(600, None)
    fitted = temperature.fit(task, labels[val], logits[val])
    assert 2.5 < fitted[0] < 6 and 1.2 < fitted[1] < 3
    before = task_metrics(task, labels[test], logits[test])
    after = task_metrics(task, labels[test], temperature.scale_logits(task, logits[test], fitted))
    calibrated = temperature.calibrated(task, labels[test], logits[test], fitted)
    assert calibrated["calibrated_mean_ece"] < before["mean_ece"] / 2
    assert calibrated["calibrated_ece"] == pytest.approx(after["ece"])
    assert calibrated["calibrated_loss"] == pytest.approx(after["loss"])
    assert after["loss"] < before["loss"]
    assert calibrated["calibrated_mean_brier"] < task_brier(
        task, labels[test], task.scores(logits[test]))["mean_brier"]
    # Per label: AUROC, AP and F1 at 0.5 (sigmoid(z / T) >= 0.5 iff z >= 0) do not move.
    for key in ("auroc", "mean_auroc", "ap", "mean_ap", "micro_f1", "macro_f1"):
        assert after[key] == pytest.approx(before[key], abs=1e-12), key
    for index, name in enumerate(task.names):
        assert after["auroc"][name] == pytest.approx(roc_auc_score(
            labels[test, index], logits[test, index] / fitted[index]), abs=1e-12)


def test_a_three_way_labels_auroc_holds_under_its_temperature():
    """Its score p1 / (p0 + p1) = sigmoid((z1 - z0) / T) keeps its order."""
    rng = np.random.default_rng(8)
    task = tasks.multilabel(["three"], three_way=[True])
    labels = rng.integers(0, 3, (300, 1))
    logits = rng.normal(size=(300, 3)) + 2.0 * np.eye(3)[labels[:, 0]]
    fitted = temperature.fit(task, labels[:150], logits[:150])
    scaled = temperature.scale_logits(task, logits[150:], fitted)
    assert fitted[0] != pytest.approx(1.0, abs=0.05)
    assert task_metrics(task, labels[150:], scaled)["auroc"] == pytest.approx(
        task_metrics(task, labels[150:], logits[150:])["auroc"], abs=1e-12)


@pytest.mark.parametrize("task", [
    tasks.multiclass("abcd"),
    tasks.multilabel(["a", "b", "c"], three_way=[False, True, False]),
    tasks.multilabel(["root", "child", "grandchild"], parents=[-1, 0, 1]),
])
def test_scaling_saved_scores_equals_scaling_the_logits(task):
    """The report rescales `predictions_<split>.npz` scores, which keep no logits."""
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(50, task.num_outputs)) * 3
    temperatures = list(rng.uniform(0.5, 3.0, len(temperature.head_names(task))))
    np.testing.assert_allclose(
        temperature.scale_scores(task, task.scores(logits), temperatures),
        task.scores(temperature.scale_logits(task, logits, temperatures)), rtol=1e-9, atol=1e-12)
    saved = temperature.to_json(task, temperatures)
    assert temperature.from_json(task, json.loads(json.dumps(saved))) == pytest.approx(
        temperatures)
