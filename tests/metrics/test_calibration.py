"""ECE and reliability bins against the formula written out bin by bin; ECE in the task metrics."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, softmax

from jaxtl.core import tasks
from jaxtl.metrics import task_metrics
from jaxtl.metrics.calibration import expected_calibration_error, reliability


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
