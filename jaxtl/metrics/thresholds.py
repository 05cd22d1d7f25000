"""Operating points: decision thresholds chosen on the validation split, applied to the test split.

AUROC says how well scores rank; a model in use decides at a threshold. Per label (multi-label
tasks: P(positive) on the entries the label counts) or per class (softmax tasks: one-vs-rest,
P(class)), three thresholds:

- `fixed`: 0.5;
- `f1`: the threshold that maximises F1 on the validation split;
- `youden`: the threshold that maximises Youden's J = sensitivity + specificity - 1 on the
  validation split.

A case is called positive when its score is >= the threshold. Candidate thresholds are the
distinct validation scores (scikit-learn's `precision_recall_curve` and `roc_curve`); ties
between candidates go to the highest threshold. Each is reported with its sensitivity,
specificity, precision and F1 on the validation and test splits, and their means over labels
under `macro`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm

from jaxtl.core.tasks import NEGATIVE, POSITIVE, Task

FIXED_THRESHOLD = 0.5
RULES = ("fixed", "f1", "youden")
RATES = ("sensitivity", "specificity", "precision", "f1")


def f1_threshold(positive: np.ndarray, scores: np.ndarray) -> float | None:
    """The validation score that maximises F1 (None without positives)."""
    if not np.any(positive):
        return None
    precision, recall, thresholds = skm.precision_recall_curve(positive, scores)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    best = np.flatnonzero(f1 == f1.max())
    return float(thresholds[best].max())


def youden_threshold(positive: np.ndarray, scores: np.ndarray) -> float | None:
    """The validation score that maximises sensitivity + specificity - 1 (None without both
    classes)."""
    if not np.any(positive) or np.all(positive):
        return None
    fpr, tpr, thresholds = skm.roc_curve(positive, scores, drop_intermediate=False)
    j = (tpr - fpr)[1:]  # the first point (threshold above every score) calls nothing positive
    best = np.flatnonzero(j == j.max())
    return float(thresholds[1:][best].max())


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

