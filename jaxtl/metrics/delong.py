"""DeLong's test for AUROCs measured on the same images (DeLong, DeLong and Clarke-Pearson
1988), with the fast algorithm of Sun and Xu (2014): midranks instead of the O(m n) pairwise
comparisons.

For scores X_i of the m positives and Y_j of the n negatives, the structural components
(placement values) are V10(X_i) = mean_j psi(X_i, Y_j) and V01(Y_j) = mean_i psi(X_i, Y_j),
psi = 1 if X > Y, 1/2 if equal, 0 otherwise; AUROC = mean V10. Over k score vectors (models)
on the same images, Cov(AUROC) = S10 / m + S01 / n, with S10, S01 the sample covariances of
the placement values across models. Sun and Xu: with T_Z the midranks of all m + n scores and
T_X, T_Y the midranks within positives and negatives, V10 = (T_Z[pos] - T_X) / n and
V01 = 1 - (T_Z[neg] - T_Y) / m.

A contrast c (e.g. +1 for model A, -1 for model B; or +1/S and -1/S over S seeds of each)
has estimate c.AUROC with variance c' Cov c; z = estimate / sd gives a two-sided normal
p-value. Images are taken as independent: several images per patient make the variance
somewhat too small, which the paired bootstrap over patients avoids (`paired.py`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from scipy import stats

from jaxtl.metrics.bootstrap import CI_LEVEL


def midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing the mean of their ranks."""
    return stats.rankdata(values, method="average")


def auroc_covariance(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROCs (k,) of k score vectors (k, N) on the same labels, and their covariance (k, k)."""
    scores = np.atleast_2d(np.asarray(scores, np.float64))
    positive = np.asarray(positive, bool)
    m, n = int(positive.sum()), int((~positive).sum())
    if m < 2 or n < 2:
        raise ValueError(f"DeLong's test needs at least 2 positives and 2 negatives "
                         f"(got {m} and {n})")
    x, y = scores[:, positive], scores[:, ~positive]
    t_z = np.apply_along_axis(midranks, 1, np.concatenate([x, y], axis=1))
    t_x = np.apply_along_axis(midranks, 1, x)
    t_y = np.apply_along_axis(midranks, 1, y)
    aurocs = (t_z[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)
    v10 = (t_z[:, :m] - t_x) / n
    v01 = 1.0 - (t_z[:, m:] - t_y) / m
    covariance = (np.atleast_2d(np.cov(v10)) / m) + (np.atleast_2d(np.cov(v01)) / n)
    return aurocs, covariance


@dataclasses.dataclass(frozen=True)
class ContrastTest:
    aurocs: tuple[float, ...]  # of each score vector
    difference: float
    standard_error: float
    ci: tuple[float, float]
    p_value: float


def contrast_test(scores: np.ndarray, positive: np.ndarray,
                  contrast: Sequence[float]) -> ContrastTest:
    """The contrast `c . AUROC` of k score vectors with its normal interval and p-value."""
    aurocs, covariance = auroc_covariance(scores, positive)
    c = np.asarray(contrast, np.float64)
    difference = float(c @ aurocs)
    se = float(np.sqrt(max(c @ covariance @ c, 0.0)))
    half = stats.norm.ppf((1 + CI_LEVEL) / 2) * se
    if se > 0:
        p = float(2 * stats.norm.sf(abs(difference) / se))
    else:
        p = 1.0 if difference == 0 else 0.0
    return ContrastTest(tuple(float(a) for a in aurocs), difference, se,
                        (difference - half, difference + half), p)
