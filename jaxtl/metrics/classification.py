"""Evaluation metrics of a task, all computed by scikit-learn.

`task_metrics` returns one JSON-ready dict per split:
- multiclass: count, loss, accuracy, quadratic weighted kappa, macro F1, expected calibration
  error of the top-label confidence (`ece`), per-class recall and the confusion matrix (rows
  are true classes).
- multilabel: count, loss, per-label AUROC, average precision and ECE of P(positive) (entries
  masked for a label are left out of that label; a label whose counted entries hold one class
  only has no AUROC/AP), mean_auroc, mean_ap and mean_ece over the labels for which the whole
  split defines them, micro and macro F1 at threshold 0.5, and micro_ap (average precision over
  all counted entries pooled).
Every mean over labels is taken over one set of labels, fixed by the whole split: in a
bootstrap resample where one of them is undefined, the mean is undefined too (and counted as
such), never a mean over fewer labels.

The metrics are computed from the task's scores (`Task.scores`: class probabilities, or
P(positive) per label), which the run folder keeps in `predictions_<split>.npz`:
`metric_function` gives the same numbers from those files (`jaxtl.report.paired_runs`).
With `bootstrap_samples > 0`, every scalar metric and every per-label metric gets a 95%
percentile interval `<name>_ci: [low, high]` from resampling patients (`bootstrap.py`).

scikit-learn is imported where a metric is computed, not with the module: its import takes
about 2 s, which every jaxtl process would pay otherwise (a `--check`, each Grain worker
process, which imports the program's main module again).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np
from scipy.special import log_softmax

from jaxtl.core.errors import NonFiniteError
from jaxtl.core.tasks import NEGATIVE, POSITIVE, Task
from jaxtl.metrics.bootstrap import Compute, bootstrap_intervals
from jaxtl.metrics.calibration import expected_calibration_error


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
    compute = metric_function(task, labels, task.scores(logits))
    result = compute(None)
    result["count"] = int(len(labels))
    result["loss"] = float(_loss(task, labels, logits))
    if bootstrap_samples > 0:
        if groups is None:
            groups = [str(i) for i in range(len(labels))]
        result.update(bootstrap_intervals(compute, groups, bootstrap_samples, seed))
    return result


def metric_function(task: Task, labels: np.ndarray, scores: np.ndarray,
                    only: Collection[str] | None = None) -> Compute:
    """sample weights (None: every image once) -> the task's metrics, from its scores.

    `only` (e.g. {'kappa'} or {'auroc/Edema', 'mean_ap'}) computes just those metrics, for
    the many calls of a paired bootstrap; None computes all.
    """
    labels, scores = np.asarray(labels), np.asarray(scores, np.float64)

    def wanted(*names: str) -> bool:
        return only is None or any(name.split("/")[0] in names for name in only)

    return (_multilabel if task.multilabel else _multiclass)(task, labels, scores, wanted)


# --- multiclass -------------------------------------------------------------------------------
def _multiclass(task: Task, labels: np.ndarray, scores: np.ndarray,
                wanted: Callable[..., bool]) -> Compute:
    from sklearn import metrics as skm  # at first use: see the module docstring

    classes = list(range(len(task.names)))
    predictions = np.argmax(scores, axis=-1)
    confidence = scores[np.arange(len(labels)), predictions]
    correct = predictions == labels
    parts: dict[str, Callable[[np.ndarray | None], float | None]] = {
        "accuracy": lambda w: float(skm.accuracy_score(labels, predictions, sample_weight=w)),
        "kappa": lambda w: _kappa(labels, predictions, classes, w),
        "macro_f1": lambda w: float(skm.f1_score(labels, predictions, labels=classes,
                                                 average="macro", sample_weight=w,
                                                 zero_division=0.0)),
        "ece": lambda w: expected_calibration_error(confidence, correct, w),
    }
    parts = {name: part for name, part in parts.items() if wanted(name)}

    def compute(weight: np.ndarray | None) -> dict[str, Any]:
        out: dict[str, Any] = {name: part(weight) for name, part in parts.items()}
        if weight is None and wanted("recall", "confusion_matrix"):
            recall = skm.recall_score(labels, predictions, labels=classes, average=None,
                                      zero_division=0.0)
            out["recall"] = {name: float(r) for name, r in zip(task.names, recall)}
            out["confusion_matrix"] = skm.confusion_matrix(labels, predictions,
                                                           labels=classes).tolist()
        return out

    return compute


def _kappa(labels: np.ndarray, predictions: np.ndarray, classes: list[int],
           weight: np.ndarray | None) -> float:
    from sklearn import metrics as skm  # at first use: see the module docstring

    # sklearn returns nan when both raters use one class only; no agreement beyond chance is 0.
    used = np.ones(len(labels), bool) if weight is None else weight > 0
    if len(np.unique(np.concatenate([labels[used], predictions[used]]))) < 2:
        return 0.0
    return float(skm.cohen_kappa_score(labels, predictions, labels=classes, weights="quadratic",
                                       sample_weight=weight))


# --- multilabel -------------------------------------------------------------------------------
def _multilabel(task: Task, labels: np.ndarray, scores: np.ndarray,
                wanted: Callable[..., bool]) -> Compute:
    from sklearn import metrics as skm  # at first use: see the module docstring

    counted = (labels == POSITIVE) | (labels == NEGATIVE)
    positive = labels == POSITIVE
    predicted = scores >= 0.5
    # The labels each mean is taken over, fixed by the whole split (see the module docstring).
    with_entries = [name for i, name in enumerate(task.names) if counted[:, i].any()]
    with_two_classes = [name for i, name in enumerate(task.names)
                        if positive[counted[:, i], i].any() and not positive[counted[:, i], i].all()]

    def compute(weight: np.ndarray | None) -> dict[str, Any]:
        w = np.ones(len(labels)) if weight is None else weight.astype(np.float64)
        auroc: dict[str, float | None] = {}
        ap: dict[str, float | None] = {}
        ece: dict[str, float | None] = {}
        f1: dict[str, float | None] = {}
        for index, name in enumerate(task.names):
            keep = counted[:, index] & (w > 0)
            y, s, sw = positive[keep, index], scores[keep, index], w[keep]
            two_classes = y.any() and not y.all()
            if wanted("auroc", "mean_auroc"):
                auroc[name] = (float(skm.roc_auc_score(y, s, sample_weight=sw)) if two_classes
                               else None)
            if wanted("ap", "mean_ap"):
                ap[name] = (float(skm.average_precision_score(y, s, sample_weight=sw))
                            if two_classes else None)
            if wanted("ece", "mean_ece"):
                ece[name] = expected_calibration_error(s, y, sw)
            if wanted("macro_f1"):
                f1[name] = (float(skm.f1_score(y, predicted[keep, index], sample_weight=sw,
                                               zero_division=0.0)) if keep.any() else None)
        keep = counted & (w[:, None] > 0)
        flat_weight = np.broadcast_to(w[:, None], labels.shape)[keep]
        y_all, s_all = positive[keep], scores[keep]
        out: dict[str, Any] = {}
        if auroc:
            out |= {"auroc": auroc, "mean_auroc": _mean(auroc, with_two_classes)}
        if ap:
            out |= {"ap": ap, "mean_ap": _mean(ap, with_two_classes)}
        if ece:
            out |= {"ece": ece, "mean_ece": _mean(ece, with_entries)}
        if wanted("micro_f1"):
            out["micro_f1"] = (float(skm.f1_score(y_all, predicted[keep],
                                                  sample_weight=flat_weight, zero_division=0.0))
                               if keep.any() else None)
        if f1:
            out["macro_f1"] = _mean(f1, with_entries)
        if wanted("micro_ap"):
            out["micro_ap"] = (float(skm.average_precision_score(y_all, s_all,
                                                                 sample_weight=flat_weight))
                               if y_all.any() and not y_all.all() else None)
        return out

    return compute


def _mean(values: dict[str, float | None], over: Sequence[str]) -> float | None:
    """The mean of `values` over the labels `over`; None if any of them is undefined."""
    chosen = [values[name] for name in over]
    if not chosen or any(v is None for v in chosen):
        return None
    return float(np.mean(chosen))


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
