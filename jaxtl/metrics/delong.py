"""DeLong's test for AUROCs measured on the same images (DeLong, DeLong and Clarke-Pearson
1988), with the fast algorithm of Sun and Xu (2014): midranks instead of the O(m n) pairwise
comparisons; and its clustered form for several images per patient (Obuchowski 1997,
"Nonparametric analysis of clustered ROC curve data", Biometrics 53:567-578).

For scores X_i of the m positives and Y_j of the n negatives, the structural components
(placement values) are V10(X_i) = mean_j psi(X_i, Y_j) and V01(Y_j) = mean_i psi(X_i, Y_j),
psi = 1 if X > Y, 1/2 if equal, 0 otherwise; AUROC = mean V10. Sun and Xu: with T_Z the
midranks of all m + n scores and T_X, T_Y the midranks within positives and negatives,
V10 = (T_Z[pos] - T_X) / n and V01 = 1 - (T_Z[neg] - T_Y) / m.

Image-level DeLong: over k score vectors (models) on the same images, Cov(AUROC) = S10 / m +
S01 / n, with S10, S01 the sample covariances of the placement values across models. It takes
images as independent.

Clustered DeLong (Obuchowski 1997): images are grouped in I clusters (patients); cluster c
holds m_c positives and n_c negatives, and V10_c, V01_c are the sums of its images' placement
values. With I10 (I01) the clusters holding at least one positive (negative), A^r the AUROC
of model r, and for models r, s

    S10_rs = I10 / ((I10 - 1) m) sum_c (V10_c^r - m_c A^r) (V10_c^s - m_c A^s),
    S01_rs = I01 / ((I01 - 1) n) sum_c (V01_c^r - n_c A^r) (V01_c^s - n_c A^s),
    S11_rs = I / (I - 1) sum_c (V10_c^r - m_c A^r) (V01_c^s - n_c A^s),
    Cov_rs = S10_rs / m + S01_rs / n + (S11_rs + S11_sr) / (m n).

With one image per patient S11 = 0 and S10, S01 are DeLong's: both tests are the same, and
`contrast_test` runs the image-level one there.

A contrast c (e.g. +1 for model A, -1 for model B; or +1/S and -1/S over S seeds of each)
has estimate c.AUROC with variance c' Cov c; z = estimate / sd gives a two-sided normal
p-value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from scipy import stats

from jaxtl.metrics.bootstrap import CI_LEVEL

DELONG = "DeLong"  # images taken as independent
CLUSTERED_DELONG = "clustered DeLong"  # Obuchowski 1997, patients as clusters


def midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks along the last axis, ties sharing the mean of their ranks."""
    return stats.rankdata(values, method="average", axis=-1)


def _check_counts(m: int, n: int) -> None:
    if m < 2 or n < 2:
        raise ValueError(f"DeLong's test needs at least 2 positives and 2 negatives "
                         f"(got {m} and {n})")


def placement_values(scores: np.ndarray,
                     positive: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUROCs (k,) of k score vectors (k, N) on the same labels, V10 (k, m) of the positives
    and V01 (k, n) of the negatives, in the order the images come."""
    scores = np.atleast_2d(np.asarray(scores, np.float64))
    positive = np.asarray(positive, bool)
    m, n = int(positive.sum()), int((~positive).sum())
    _check_counts(m, n)
    x, y = scores[:, positive], scores[:, ~positive]
    t_z = midranks(np.concatenate([x, y], axis=1))
    aurocs = (t_z[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)
    v10 = (t_z[:, :m] - midranks(x)) / n
    v01 = 1.0 - (t_z[:, m:] - midranks(y)) / m
    return aurocs, v10, v01


def auroc_covariance(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROCs (k,) of k score vectors (k, N) on the same labels, and their covariance (k, k),
    images taken as independent."""
    aurocs, v10, v01 = placement_values(scores, positive)
    m, n = v10.shape[1], v01.shape[1]
    covariance = (np.atleast_2d(np.cov(v10)) / m) + (np.atleast_2d(np.cov(v01)) / n)
    return aurocs, covariance


def clustered_auroc_covariance(scores: np.ndarray, positive: np.ndarray,
                               clusters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROCs (k,) and their covariance (k, k) by Obuchowski's (1997) estimator, images of one
    cluster (patient id in `clusters`, one per image) taken as correlated."""
    positive = np.asarray(positive, bool)
    aurocs, v10, v01 = placement_values(scores, positive)
    m, n = v10.shape[1], v01.shape[1]
    names, index = np.unique(np.asarray(clusters), return_inverse=True)
    index, count = index.reshape(-1), len(names)
    if len(index) != len(positive):
        raise ValueError(f"{len(index)} cluster ids for {len(positive)} images")
    m_c = np.bincount(index[positive], minlength=count)
    n_c = np.bincount(index[~positive], minlength=count)
    with_positives, with_negatives = int(np.sum(m_c > 0)), int(np.sum(n_c > 0))
    if with_positives < 2 or with_negatives < 2:
        raise ValueError(f"the clustered DeLong test needs at least 2 patients with a positive "
                         f"and 2 with a negative (got {with_positives} and {with_negatives})")

    def cluster_sums(values: np.ndarray, members: np.ndarray) -> np.ndarray:
        return np.stack([np.bincount(members, weights=row, minlength=count) for row in values])

    a10 = cluster_sums(v10, index[positive]) - aurocs[:, None] * m_c  # (k, I)
    a01 = cluster_sums(v01, index[~positive]) - aurocs[:, None] * n_c
    s10 = with_positives / ((with_positives - 1) * m) * (a10 @ a10.T)
    s01 = with_negatives / ((with_negatives - 1) * n) * (a01 @ a01.T)
    s11 = count / (count - 1) * (a10 @ a01.T)
    return aurocs, s10 / m + s01 / n + (s11 + s11.T) / (m * n)


@dataclasses.dataclass(frozen=True)
class ContrastTest:
    aurocs: tuple[float, ...]  # of each score vector
    difference: float
    standard_error: float
    ci: tuple[float, float]
    p_value: float
    test: str  # DELONG or CLUSTERED_DELONG
    clusters: int  # patients (images where no clusters were given)
    positives: int  # images
    negatives: int


def chosen_test(clusters: np.ndarray | None, images: int) -> str:
    """CLUSTERED_DELONG where some cluster (patient) holds several of the images, else DELONG."""
    if clusters is not None and len(np.unique(np.asarray(clusters))) < images:
        return CLUSTERED_DELONG
    return DELONG


def contrast_test(scores: np.ndarray, positive: np.ndarray, contrast: Sequence[float],
                  clusters: np.ndarray | None = None) -> ContrastTest:
    """The contrast `c . AUROC` of k score vectors with its normal interval and p-value: by the
    clustered DeLong test where some cluster (patient) holds several images, else by DeLong's."""
    positive = np.asarray(positive, bool)
    test = chosen_test(clusters, len(positive))
    if test == CLUSTERED_DELONG:
        aurocs, covariance = clustered_auroc_covariance(scores, positive, clusters)
    else:
        aurocs, covariance = auroc_covariance(scores, positive)
    count = len(positive) if clusters is None else len(np.unique(np.asarray(clusters)))
    c = np.asarray(contrast, np.float64)
    difference = float(c @ aurocs)
    se = float(np.sqrt(max(c @ covariance @ c, 0.0)))
    half = stats.norm.ppf((1 + CI_LEVEL) / 2) * se
    if se > 0:
        p = float(2 * stats.norm.sf(abs(difference) / se))
    else:
        p = 1.0 if difference == 0 else 0.0
    return ContrastTest(tuple(float(a) for a in aurocs), difference, se,
                        (float(difference - half), float(difference + half)), p, test, count,
                        int(positive.sum()), int((~positive).sum()))
