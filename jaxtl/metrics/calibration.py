"""Calibration: reliability bins and the expected calibration error (ECE).

Confidences fall into `BINS` equal-width bins on [0, 1], bin m holding ((m - 1) / M, m / M]
(a confidence of exactly 0 joins the first bin), as Guo et al. (2017) define them. Per bin: the
(weighted) count, the mean confidence and the mean outcome (the fraction correct, or the
fraction positive). ECE = sum over bins of (bin weight / total weight) * |mean outcome - mean
confidence|.

What is calibrated depends on the task (`jaxtl.metrics.classification`): the top-label confidence and
whether the argmax is right for a softmax task; P(positive) and whether the entry is positive,
per label, for a multi-label task.

The Brier score (scikit-learn's `brier_score_loss`) is the mean squared difference between
the predicted probabilities and the one-hot outcome: summed over the classes for a softmax task
(0 to 2, Brier's original score), of P(positive) per label over its counted entries for a
multi-label task (0 to 1), with `mean_brier` over the labels that have counted entries.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxtl.core.tasks import NEGATIVE, POSITIVE, Task

BINS = 15


@dataclasses.dataclass(frozen=True)
class Reliability:
    """Per bin: total weight, mean confidence, mean outcome (NaN where a bin is empty)."""

    weight: np.ndarray
    confidence: np.ndarray
    outcome: np.ndarray

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(0.0, 1.0, len(self.weight) + 1)


def bin_index(confidence: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Bin of each confidence: m - 1 for ((m - 1) / bins, m / bins], 0 for exactly 0."""
    index = np.ceil(np.asarray(confidence, np.float64) * bins).astype(np.int64) - 1
    return np.clip(index, 0, bins - 1)


def reliability(confidence: np.ndarray, outcome: np.ndarray, weight: np.ndarray | None = None,
                bins: int = BINS) -> Reliability:
    confidence = np.asarray(confidence, np.float64)
    outcome = np.asarray(outcome, np.float64)
    weight = np.ones(len(confidence)) if weight is None else np.asarray(weight, np.float64)
    index = bin_index(confidence, bins)
    total = np.bincount(index, weight, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, weight * confidence, minlength=bins) / total
        mean_outcome = np.bincount(index, weight * outcome, minlength=bins) / total
    return Reliability(total, mean_confidence, mean_outcome)


def expected_calibration_error(confidence: np.ndarray, outcome: np.ndarray,
                               weight: np.ndarray | None = None,
                               bins: int = BINS) -> float | None:
    """ECE over `bins` equal-width bins; None when the total weight is 0."""
    table = reliability(confidence, outcome, weight, bins)
    total = table.weight.sum()
    if total <= 0:
        return None
    used = table.weight > 0
    gaps = np.abs(table.outcome[used] - table.confidence[used])
    return float(np.sum(table.weight[used] / total * gaps))


def brier_score(probabilities: np.ndarray, outcome: np.ndarray,
                weight: np.ndarray | None = None) -> float | None:
    """Binary Brier score: the (weighted) mean of (probability - outcome)^2; None without
    entries."""
    from sklearn.metrics import brier_score_loss  # at first use (metrics/classification.py)

    probabilities = np.asarray(probabilities, np.float64)
    if len(probabilities) == 0:
        return None
    return float(brier_score_loss(np.asarray(outcome).astype(np.int64), probabilities,
                                  sample_weight=weight, pos_label=1, scale_by_half=True))


def task_brier(task: Task, labels: np.ndarray, scores: np.ndarray) -> dict:
    """{"brier": ...} of a task's scores (see the module docstring): one number for a softmax
    task; per label, with "mean_brier", for a multi-label task."""
    from sklearn.metrics import brier_score_loss  # at first use (metrics/classification.py)

    labels, scores = np.asarray(labels), np.asarray(scores, np.float64)
    if not task.multilabel:
        if len(labels) == 0:
            return {"brier": None}
        return {"brier": float(brier_score_loss(labels, scores, labels=range(len(task.names)),
                                                scale_by_half=False))}
    counted = (labels == POSITIVE) | (labels == NEGATIVE)
    per_label = {name: brier_score(scores[counted[:, i], i], labels[counted[:, i], i] == POSITIVE)
                 for i, name in enumerate(task.names)}
    defined = [value for value in per_label.values() if value is not None]
    return {"brier": per_label, "mean_brier": float(np.mean(defined)) if defined else None}
