"""Evaluation metrics of a task, all computed by scikit-learn.

`task_metrics` returns one JSON-ready dict per split:
- multiclass: count, loss, accuracy, quadratic weighted kappa, macro F1, per-class recall and
  the confusion matrix (rows are true classes).
- multilabel: count, loss, per-label AUROC and average precision (entries masked for a label are
  left out of that label; a label whose counted entries hold one class only has no AUROC/AP and
  is left out of the means), mean_auroc and mean_ap over the task's labels, micro and macro F1
  at threshold 0.5, and micro_ap (average precision over all counted entries pooled).
With `bootstrap_samples > 0`, every scalar metric and every per-label AUROC/AP gets a 95%
percentile interval `<name>_ci: [low, high]` from resampling patients (groups) with
replacement: a resampled patient brings all of its images, so images of one patient are never
treated as independent. Resampled sets are passed to scikit-learn as integer sample weights,
which equals duplicating the images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.special import log_softmax
from sklearn import metrics as skm

from jaxtl.errors import NonFiniteError
from jaxtl.metrics.bootstrap import CI_LEVEL, bootstrap_intervals
from jaxtl.tasks import NEGATIVE, POSITIVE, Task


def task_metrics(task: Task, labels: np.ndarray, logits: np.ndarray,
                 groups: Sequence[str] | None = None, *, bootstrap_samples: int = 0,
                 seed: int = 0) -> dict[str, Any]:
    labels = np.asarray(labels)
    logits = np.asarray(logits, np.float64)
    if not np.isfinite(logits).all():
        bad = int((~np.isfinite(logits)).reshape(len(logits), -1).any(axis=1).sum())
        raise NonFiniteError(f"the model's outputs are not finite (NaN or infinite) for {bad} "
                             f"of {len(logits)} images: no metric can be computed; the model "
                             f"diverged or the inputs hold NaN/inf values")
    if task.multilabel:
        compute = _multilabel(task, labels, logits)
    else:
        compute = _multiclass(task, labels, logits)
    result = compute(None)
    result["count"] = int(len(labels))
    result["loss"] = float(_loss(task, labels, logits))
    if bootstrap_samples > 0:
        if groups is None:
            groups = [str(i) for i in range(len(labels))]
        result.update(bootstrap_intervals(compute, groups, bootstrap_samples, seed))
        result["ci_level"] = CI_LEVEL
        result["bootstrap_samples"] = bootstrap_samples
    return result


# --- multiclass -------------------------------------------------------------------------------
def _multiclass(task: Task, labels: np.ndarray,
                logits: np.ndarray) -> Callable[[np.ndarray | None], dict[str, Any]]:
    classes = list(range(len(task.names)))
    predictions = np.argmax(logits, axis=-1)

    def compute(weight: np.ndarray | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "accuracy": float(skm.accuracy_score(labels, predictions, sample_weight=weight)),
            "kappa": _kappa(labels, predictions, classes, weight),
            "macro_f1": float(skm.f1_score(labels, predictions, labels=classes, average="macro",
                                           sample_weight=weight, zero_division=0.0)),
        }
        if weight is None:
            recall = skm.recall_score(labels, predictions, labels=classes, average=None,
                                      zero_division=0.0)
            out["recall"] = {name: float(r) for name, r in zip(task.names, recall)}
            out["confusion_matrix"] = skm.confusion_matrix(labels, predictions,
                                                           labels=classes).tolist()
        return out

    return compute


def _kappa(labels: np.ndarray, predictions: np.ndarray, classes: list[int],
           weight: np.ndarray | None) -> float:
    # sklearn returns nan when both raters use one class only; no agreement beyond chance is 0.
    used = np.ones(len(labels), bool) if weight is None else weight > 0
    if len(np.unique(np.concatenate([labels[used], predictions[used]]))) < 2:
        return 0.0
    return float(skm.cohen_kappa_score(labels, predictions, labels=classes, weights="quadratic",
                                       sample_weight=weight))


# --- multilabel -------------------------------------------------------------------------------
def _multilabel(task: Task, labels: np.ndarray,
                logits: np.ndarray) -> Callable[[np.ndarray | None], dict[str, Any]]:
    scores = task.scores(logits)
    counted = (labels == POSITIVE) | (labels == NEGATIVE)
    positive = labels == POSITIVE
    predicted = scores >= 0.5

    def compute(weight: np.ndarray | None) -> dict[str, Any]:
        w = np.ones(len(labels)) if weight is None else weight.astype(np.float64)
        auroc: dict[str, float | None] = {}
        ap: dict[str, float | None] = {}
        f1: list[float] = []
        for index, name in enumerate(task.names):
            keep = counted[:, index] & (w > 0)
            y, s, sw = positive[keep, index], scores[keep, index], w[keep]
            two_classes = y.any() and not y.all()
            auroc[name] = float(skm.roc_auc_score(y, s, sample_weight=sw)) if two_classes else None
            ap[name] = (float(skm.average_precision_score(y, s, sample_weight=sw))
                        if two_classes else None)
            if keep.any():
                f1.append(skm.f1_score(y, predicted[keep, index], sample_weight=sw,
                                       zero_division=0.0))
        keep = counted & (w[:, None] > 0)
        flat_weight = np.broadcast_to(w[:, None], labels.shape)[keep]
        y_all, s_all = positive[keep], scores[keep]
        return {
            "auroc": auroc,
            "ap": ap,
            "mean_auroc": _mean(auroc.values()),
            "mean_ap": _mean(ap.values()),
            "micro_f1": float(skm.f1_score(y_all, predicted[keep], sample_weight=flat_weight,
                                           zero_division=0.0)) if keep.any() else None,
            "macro_f1": float(np.mean(f1)) if f1 else None,
            "micro_ap": (float(skm.average_precision_score(y_all, s_all,
                                                           sample_weight=flat_weight))
                         if y_all.any() and not y_all.all() else None),
        }

    return compute


def _mean(values) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


# --- loss -------------------------------------------------------------------------------------
def _loss(task: Task, labels: np.ndarray, logits: np.ndarray) -> float:
    """The training loss (without label smoothing) over the whole split, in NumPy."""
    if not task.multilabel:
        log_probs = log_softmax(logits, axis=-1)
        return float(-np.mean(log_probs[np.arange(len(labels)), labels]))
    total, count = 0.0, 0
    for index, (columns, three) in enumerate(zip(task.output_slices(), task.three_way)):
        target = labels[:, index]
        if three:
            counted = target >= 0
            log_probs = log_softmax(logits[:, columns], axis=-1)
            loss = -log_probs[np.arange(len(target)), np.clip(target, 0, 2)]
        else:
            counted = (target == POSITIVE) | (target == NEGATIVE)
            z = logits[:, columns.start]
            loss = np.logaddexp(0.0, z) - target.clip(0, 1) * z
        if (parent := task.parents[index]) >= 0:
            counted &= labels[:, parent] == POSITIVE
        total += float(loss[counted].sum())
        count += int(counted.sum())
    return total / max(count, 1)
