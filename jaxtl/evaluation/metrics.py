"""Single-label classification metrics, all from scikit-learn."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import log_softmax
from sklearn import metrics as skm


def classification_metrics(labels: np.ndarray, logits: np.ndarray,
                           class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, quadratic weighted kappa, per-class recall and the confusion matrix.

    Predictions are the arg-max class. Rows of the confusion matrix are true classes.
    """
    classes = list(range(len(class_names)))
    predictions = np.argmax(logits, axis=-1)
    log_probs = log_softmax(logits.astype(np.float64), axis=-1)
    loss = float(-np.mean(log_probs[np.arange(len(labels)), labels]))
    recall = skm.recall_score(labels, predictions, labels=classes, average=None,
                              zero_division=0.0)
    return {
        "count": int(len(labels)),
        "loss": loss,
        "accuracy": float(skm.accuracy_score(labels, predictions)),
        "kappa": float(_kappa(labels, predictions, classes)),
        "recall": {name: float(r) for name, r in zip(class_names, recall)},
        "confusion_matrix": skm.confusion_matrix(labels, predictions, labels=classes).tolist(),
    }


def _kappa(labels: np.ndarray, predictions: np.ndarray, classes: list[int]) -> float:
    # sklearn returns nan when both raters use one class only; no agreement beyond chance is 0.
    if len(np.unique(np.concatenate([labels, predictions]))) < 2:
        return 0.0
    return skm.cohen_kappa_score(labels, predictions, labels=classes, weights="quadratic")

