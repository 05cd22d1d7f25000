"""Classification metrics against scikit-learn and an independent kappa formula."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from jaxtl.core import tasks
from jaxtl.metrics import task_metrics

NAMES = ("0", "1", "2", "3", "4")


def quadratic_kappa(a, b, k=5):
    """Quadratic weighted kappa from its definition (Cohen 1968)."""
    observed = np.zeros((k, k))
    for x, y in zip(a, b):
        observed[x, y] += 1
    expected = np.outer(observed.sum(1), observed.sum(0)) / observed.sum()
    weights = np.array([[(i - j) ** 2 for j in range(k)] for i in range(k)]) / (k - 1) ** 2
    return 1 - (weights * observed).sum() / (weights * expected).sum()


def test_metrics_match_references():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 200)
    logits = rng.normal(size=(200, 5)) + 2.0 * np.eye(5)[labels]
    result = task_metrics(tasks.multiclass(NAMES), labels, logits)
    predictions = logits.argmax(1)
    assert result["count"] == 200
    assert result["accuracy"] == pytest.approx(np.mean(predictions == labels))
    assert result["kappa"] == pytest.approx(quadratic_kappa(labels, predictions))
    assert result["kappa"] == pytest.approx(cohen_kappa_score(labels, predictions,
                                                              weights="quadratic"))
    for c in range(5):
        assert result["recall"][NAMES[c]] == pytest.approx(np.mean(predictions[labels == c] == c))
    matrix = np.array(result["confusion_matrix"])
    assert matrix.sum() == 200 and np.trace(matrix) == np.sum(predictions == labels)
    assert matrix[labels[0], predictions[0]] >= 1
    log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    assert result["loss"] == pytest.approx(-log_probs[np.arange(200), labels].mean())


def test_absent_classes_keep_their_row():
    result = task_metrics(tasks.multiclass(NAMES), np.array([0, 0, 1]), np.eye(5)[[0, 1, 1]])
    assert np.array(result["confusion_matrix"]).shape == (5, 5)
    assert result["recall"]["4"] == 0.0
