"""Post-hoc temperature scaling (Guo et al. 2017): one temperature T > 0 per task head, fitted
on the validation split by minimising its log-loss, then applied to any split as logits / T.

The heads are those the model is trained with (`jaxtl.core.tasks`): the softmax over the
classes of a multiclass task (one T); per label of a multi-label task, its sigmoid or its
three-way softmax (one T each, since the labels' heads are trained and calibrated apart). A
head's log-loss is its training loss without smoothing or weights, over the entries the loss
counts (a hierarchical child only where its parent is positive), so each T is fitted to
exactly what the head models. Dividing logits by T > 0 keeps the argmax of a softmax head and
the order of a label's scores (sigmoid(z / T); a three-way label's sigmoid((z1 - z0) / T)), so
accuracy, kappa, F1, and a label's AUROC and AP are unchanged; what may move is listed in
docs/statistics.md (one-vs-rest scores of three or more classes, pooled multi-label metrics,
a hierarchical child's product of scaled probabilities).

A binary head is fitted as a softmax over the logits (0, z), whose log-loss is the sigmoid
log-loss of z. With beta = 1 / T, the log-loss mean(logsumexp(beta z) - beta z_y) is convex in
beta (its second derivative is the variance of z under softmax(beta z)), so its minimiser is
the root of the increasing first derivative, found to machine precision; T is searched in
`BOUNDS` and stays at a bound when the loss keeps falling past it (a label whose validation
entries are all on the right side keeps sharpening as T -> 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit, logit, softmax

from jaxtl.core.tasks import POSITIVE, Task, counted_entries
from jaxtl.metrics.calibration import task_brier
from jaxtl.metrics.classification import task_metrics

BOUNDS = (0.01, 100.0)  # the temperatures searched
METHOD = "temperature scaling (Guo et al. 2017), one temperature per head"
PREFIX = "calibrated_"  # split metrics after scaling: calibrated_ece, calibrated_brier, ...
CALIBRATION_KEYS = ("loss", "ece", "mean_ece", "brier", "mean_brier")  # those rescaled

Temperatures = list[float | None]  # per head; None: no entries to fit on (left at 1)


def head_names(task: Task) -> list[str]:
    """One name per head: the task's labels (multi-label), or one softmax head ("classes")."""
    return list(task.names) if task.multilabel else ["classes"]


def head_entries(task: Task, labels: np.ndarray,
                 logits: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per head: (its logits (n, k) over the entries its loss counts, the target index (n,));
    a binary head's logits as the pair (0, z)."""
    labels, logits = np.asarray(labels), np.asarray(logits, np.float64)
    if not task.multilabel:
        return [(logits, labels.astype(np.int64))]
    _, counted = counted_entries(task, labels)
    entries = []
    for index, (columns, three) in enumerate(zip(task.output_slices(), task.three_way)):
        keep = counted[:, index]
        target = labels[keep, index].astype(np.int64)
        if three:
            entries.append((logits[keep, columns], target))
        else:
            z = logits[keep, columns.start]
            entries.append((np.stack([np.zeros_like(z), z], axis=1),
                            (target == POSITIVE).astype(np.int64)))
    return entries


def fit_temperature(logits: np.ndarray, target: np.ndarray) -> float | None:
    """The T in `BOUNDS` minimising mean(-log softmax(logits / T)[target]); None without
    entries, 1 when the loss does not depend on T (every row's logits equal)."""
    logits = np.asarray(logits, np.float64)
    if len(logits) == 0:
        return None
    chosen = logits[np.arange(len(logits)), target]

    def slope(beta: float) -> float:  # d/d beta of the log-loss at beta = 1 / T
        return float(np.mean((softmax(beta * logits, axis=1) * logits).sum(axis=1) - chosen))

    low, high = 1.0 / BOUNDS[1], 1.0 / BOUNDS[0]
    at_low, at_high = slope(low), slope(high)
    if at_low == 0.0 and at_high == 0.0:
        return 1.0
    if at_low >= 0.0:
        return BOUNDS[1]
    if at_high <= 0.0:
        return BOUNDS[0]
    return 1.0 / brentq(slope, low, high, xtol=1e-14, rtol=1e-14, maxiter=500)


def fit(task: Task, labels: np.ndarray, logits: np.ndarray) -> Temperatures:
    """One temperature per head (`head_names`) from a split's labels and logits."""
    return [fit_temperature(z, y) for z, y in head_entries(task, labels, logits)]


def _factors(task: Task, temperatures: Temperatures) -> list[float]:
    if len(temperatures) != len(head_names(task)):
        raise ValueError(f"{len(temperatures)} temperatures for a task of "
                         f"{len(head_names(task))} heads")
    return [1.0 if t is None else float(t) for t in temperatures]


def scale_logits(task: Task, logits: np.ndarray, temperatures: Temperatures) -> np.ndarray:
    """Each head's logits divided by its temperature."""
    scaled = np.array(logits, np.float64)
    factors = _factors(task, temperatures)
    if not task.multilabel:
        return scaled / factors[0]
    for columns, factor in zip(task.output_slices(), factors):
        scaled[:, columns] /= factor
    return scaled


def scale_scores(task: Task, scores: np.ndarray, temperatures: Temperatures) -> np.ndarray:
    """The task's scores after scaling, from the scores alone (`predictions_<split>.npz` keeps
    no logits): log-probabilities are a softmax head's logits up to a constant per image; a
    binary label's score is sigmoid(z) and a three-way label's p1 / (p0 + p1) = sigmoid(z1 -
    z0), both rescaled as sigmoid(logit(score) / T); a hierarchical label's conditional score
    is its score over its parent's. Equal to `task.scores(scale_logits(...))` up to float64
    saturation (a score rounded to exactly 0 or 1 stays there)."""
    scores = np.asarray(scores, np.float64)
    factors = _factors(task, temperatures)
    with np.errstate(divide="ignore", invalid="ignore"):
        if not task.multilabel:
            return softmax(np.log(scores) / factors[0], axis=-1)
        conditional = scores.copy()
        for index, parent in enumerate(task.parents):
            if parent >= 0:
                conditional[:, index] = np.where(scores[:, parent] > 0,
                                                 scores[:, index] / scores[:, parent], 0.0)
        conditional = expit(logit(np.clip(conditional, 0.0, 1.0)) / np.asarray(factors))
    if not task.hierarchical:
        return conditional
    return np.stack([np.prod(conditional[:, task.path(i)], axis=1)
                     for i in range(len(task.names))], axis=1)


def calibration_metrics(task: Task, labels: np.ndarray, logits: np.ndarray) -> dict[str, Any]:
    """The log-loss, ECE and Brier score of a split's logits, as `task_metrics` and
    `task_brier` compute them (per label and their means for a multi-label task)."""
    metrics = task_metrics(task, labels, logits)
    metrics |= task_brier(task, labels, task.scores(logits))
    return {key: metrics[key] for key in CALIBRATION_KEYS if key in metrics}


def calibrated(task: Task, labels: np.ndarray, logits: np.ndarray,
               temperatures: Temperatures) -> dict[str, Any]:
    """`calibration_metrics` after scaling, under `PREFIX`ed keys (calibrated_ece, ...)."""
    after = calibration_metrics(task, labels, scale_logits(task, logits, temperatures))
    return {PREFIX + key: value for key, value in after.items()}


def to_json(task: Task, temperatures: Temperatures) -> float | dict[str, float | None] | None:
    """A multiclass task's temperature, or {label: temperature} of a multi-label task."""
    if not task.multilabel:
        return temperatures[0]
    return dict(zip(head_names(task), temperatures))


def from_json(task: Task, saved: float | Mapping[str, float | None] | None) -> Temperatures:
    """The temperatures `to_json` wrote, per head of `task`."""
    if not task.multilabel:
        return [None if saved is None else float(saved)]
    if not isinstance(saved, Mapping):
        raise TypeError("a multi-label task's temperatures are a {label: temperature} object")
    return [saved.get(name) for name in head_names(task)]


def record(task: Task, temperatures: Temperatures, fitted_on: str) -> dict[str, Any]:
    """The `calibration` entry of results.json."""
    return {"method": METHOD, "fitted_on": fitted_on,
            "temperature": to_json(task, temperatures), "bounds": list(BOUNDS)}
