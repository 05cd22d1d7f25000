"""Operating points: decision thresholds chosen on the validation split, applied to the test split.

AUROC says how well scores rank; a model in use decides at a threshold. Per label (multi-label
tasks: P(positive) on the entries the label counts) or per class (softmax tasks: one-vs-rest,
P(class)), three thresholds:

- `fixed`: 0.5;
- `f1`: the threshold that maximises F1 on the validation split;
- `youden`: the threshold that maximises Youden's J = sensitivity + specificity - 1 on the
  validation split.

A case is called positive when its score is >= the threshold. Candidate thresholds are the
distinct validation scores; ties between candidates go to the highest threshold. The choice
is made on exact counts, so that exact ties are found as ties: with TP, FP the positives and
negatives called at a threshold, P and N those of the split, J = TP / P - FP / N is compared
as the integer TP N - FP P, and F1 = 2 TP / (TP + FP + P) by cross-multiplied integers
(floating-point differences would let rounding noise decide ties such as
0.8 - 0.6 = 0.4 - 0.2). Each is reported with its sensitivity, specificity, precision and F1
on the validation and test splits, and their means over labels under `macro`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxtl.core.tasks import NEGATIVE, POSITIVE, Task

FIXED_THRESHOLD = 0.5
RULES = ("fixed", "f1", "youden")
RATES = ("sensitivity", "specificity", "precision", "f1")


def called_counts(positive: np.ndarray,
                  scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct scores in descending order, and at each taken as the threshold the
    positives (TP) and negatives (FP) called positive (score >= threshold), as integers."""
    positive = np.asarray(positive, bool)
    scores = np.asarray(scores, np.float64)
    thresholds = np.unique(scores)[::-1]

    def at_or_above(values: np.ndarray) -> np.ndarray:
        return len(values) - np.searchsorted(np.sort(values), thresholds, side="left")

    return (thresholds, at_or_above(scores[positive]).astype(np.int64),
            at_or_above(scores[~positive]).astype(np.int64))


def f1_threshold(positive: np.ndarray, scores: np.ndarray) -> float | None:
    """The validation score that maximises F1 (None without positives)."""
    if not np.any(positive):
        return None
    thresholds, tp, fp = called_counts(positive, scores)
    denominator = tp + fp + int(np.sum(positive))  # F1 = 2 tp / denominator
    best = int(np.argmax(tp / denominator))  # a start; exact from here on
    while True:  # a / b > c / d exactly when a d > c b (int64: exact below 2e9 images)
        better = np.flatnonzero(tp * denominator[best] > tp[best] * denominator)
        if not len(better):
            break
        best = int(better[0])
    ties = np.flatnonzero(tp * denominator[best] == tp[best] * denominator)
    return float(thresholds[ties[0]])  # descending thresholds: the first is the highest


def youden_threshold(positive: np.ndarray, scores: np.ndarray) -> float | None:
    """The validation score that maximises sensitivity + specificity - 1 (None without both
    classes)."""
    if not np.any(positive) or np.all(positive):
        return None
    thresholds, tp, fp = called_counts(positive, scores)
    p, n = int(np.sum(positive)), int(np.sum(~np.asarray(positive, bool)))
    j_times_pn = tp * n - fp * p  # J * P * N, exact in int64
    return float(thresholds[np.argmax(j_times_pn)])  # the first maximum: highest threshold


def rates(positive: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float | None]:
    called = scores >= threshold
    tp = int(np.sum(called & positive))
    fp = int(np.sum(called & ~positive))
    fn = int(np.sum(~called & positive))
    tn = int(np.sum(~called & ~positive))

    def ratio(a: int, b: int) -> float | None:
        return a / b if b else None

    return {"sensitivity": ratio(tp, tp + fn), "specificity": ratio(tn, tn + fp),
            "precision": ratio(tp, tp + fp), "f1": ratio(2 * tp, 2 * tp + fp + fn)}


def binary_views(task: Task, labels: np.ndarray,
                 scores: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{label or class: (positive, score)} over the entries each one counts."""
    labels, scores = np.asarray(labels), np.asarray(scores, np.float64)
    if task.multilabel:
        out = {}
        for index, name in enumerate(task.names):
            keep = (labels[:, index] == POSITIVE) | (labels[:, index] == NEGATIVE)
            out[name] = (labels[keep, index] == POSITIVE, scores[keep, index])
        return out
    return {name: (labels == index, scores[:, index]) for index, name in enumerate(task.names)}


def operating_points(task: Task, val: tuple[np.ndarray, np.ndarray],
                     test: tuple[np.ndarray, np.ndarray] | None) -> dict[str, Any]:
    """Thresholds from `val` = (labels, scores), applied to `test` (None: no test split)."""
    val_views = binary_views(task, *val)
    test_views = binary_views(task, *test) if test is not None else {}
    per_label: dict[str, Any] = {}
    for name, (positive, scores) in val_views.items():
        chosen = {"fixed": FIXED_THRESHOLD, "f1": f1_threshold(positive, scores),
                  "youden": youden_threshold(positive, scores)}
        per_label[name] = {}
        for rule, threshold in chosen.items():
            entry: dict[str, Any] = {"threshold": threshold}
            if threshold is not None:
                entry["val"] = rates(positive, scores, threshold)
                if name in test_views:
                    entry["test"] = rates(*test_views[name], threshold)
            per_label[name][rule] = entry
    return {"rules": {"fixed": f"score >= {FIXED_THRESHOLD}",
                      "f1": "threshold maximising F1 on the validation split",
                      "youden": "threshold maximising Youden's J on the validation split"},
            "kind": "per label" if task.multilabel else "per class, one-vs-rest",
            "labels": per_label, "macro": _macro(per_label)}


def _macro(per_label: dict[str, Any]) -> dict[str, Any]:
    """Per rule and split, each rate's mean over the labels that define it."""
    out: dict[str, Any] = {}
    for rule in RULES:
        for split in ("val", "test"):
            found = [entry[rule][split] for entry in per_label.values() if split in entry[rule]]
            means = {}
            for rate in RATES:
                values = [f[rate] for f in found if f[rate] is not None]
                means[rate] = float(np.mean(values)) if values else None
            if found:
                out.setdefault(rule, {})[split] = means
    return out

