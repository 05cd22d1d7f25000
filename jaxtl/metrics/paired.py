"""Paired bootstrap over patients: the difference of a metric between two groups of runs
scored on the same images.

Each resample draws patients with replacement (`bootstrap.resample_weights`) and applies the
same draw to every run, so the runs are compared on the same resampled images. A group is one
run or several (seeds): its value is the mean of its runs' metric. The difference is
mean(A) - mean(B), its 95% interval the percentile interval over the valid resamples, and the
two-sided p-value

    p = min(1, 2 * (1 + min(#{d* <= 0}, #{d* >= 0})) / (1 + valid resamples)),

the smallest level at which a percentile interval would exclude 0 (so p < 0.05 exactly when
the 95% interval lies on one side of 0, up to the +1 that keeps p above 0). The interval says
how much the difference could change with other patients; it holds the trained models fixed,
so the spread over seeds is reported beside it, not inside it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from jaxtl.metrics.bootstrap import (
    Compute,
    is_valid,
    percentile_interval,
    resample_weights,
    scalars,
)


@dataclasses.dataclass(frozen=True)
class PairedDifference:
    metric: str
    a: float | None  # mean over A's runs
    b: float | None
    difference: float | None  # a - b on all images
    ci: tuple[float, float] | None
    p_value: float | None
    valid: int  # resamples in which the metric was defined for every run
    samples: int


def bootstrap_p_value(differences: Sequence[float]) -> float:
    d = np.asarray(differences, np.float64)
    tail = min(int(np.sum(d <= 0)), int(np.sum(d >= 0)))
    return float(min(1.0, 2 * (1 + tail) / (1 + len(d))))


def _group_mean(values: Sequence[dict[str, float | None]], metric: str) -> float | None:
    chosen = [v.get(metric) for v in values]
    if not chosen or not all(is_valid(v) for v in chosen):
        return None
    return float(np.mean(chosen))


def paired_bootstrap(runs_a: Sequence[Compute], runs_b: Sequence[Compute],
                     groups: Sequence[str], metrics: Sequence[str], *, samples: int,
                     seed: int) -> dict[str, PairedDifference]:
    """Per metric ('kappa', 'mean_auroc', 'auroc/Edema', ...): mean(A) - mean(B) with its
    paired-bootstrap interval and p-value."""
    full_a = [scalars(compute(None)) for compute in runs_a]
    full_b = [scalars(compute(None)) for compute in runs_b]
    draws: dict[str, list[float]] = {metric: [] for metric in metrics}
    for weights in resample_weights(groups, samples, seed):
        values_a = [scalars(compute(weights)) for compute in runs_a]
        values_b = [scalars(compute(weights)) for compute in runs_b]
        for metric in metrics:
            a, b = _group_mean(values_a, metric), _group_mean(values_b, metric)
            if a is not None and b is not None:
                draws[metric].append(a - b)
    out = {}
    for metric in metrics:
        a, b = _group_mean(full_a, metric), _group_mean(full_b, metric)
        values = draws[metric]
        out[metric] = PairedDifference(
            metric=metric, a=a, b=b,
            difference=None if a is None or b is None else a - b,
            ci=tuple(percentile_interval(values)) if values else None,
            p_value=bootstrap_p_value(values) if values else None,
            valid=len(values), samples=samples)
    return out
