"""DeLong's paired test against its O(n^2) definition and its clustered form against Obuchowski's
formulas and a simulation under the null; the paired bootstrap against a plain loop; Holm
against its step-down formula; operating points against a brute-force search and exact
fractions."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from scipy import stats
from scipy.special import expit
from sklearn import metrics as skm

from jaxtl.core import tasks
from jaxtl.metrics import metric_function
from jaxtl.metrics.bootstrap import resample_weights
from jaxtl.metrics.delong import (
    CLUSTERED_DELONG,
    DELONG,
    auroc_covariance,
    clustered_auroc_covariance,
    contrast_test,
)
from jaxtl.metrics.multiple import holm
from jaxtl.metrics.paired import paired_bootstrap
from jaxtl.metrics.thresholds import f1_threshold, operating_points, rates, youden_threshold


def two_models(n=150, seed=0, ties=True):
    rng = np.random.default_rng(seed)
    positive = rng.uniform(size=n) < 0.4
    a = rng.normal(size=n) + 1.2 * positive
    b = a + rng.normal(scale=0.8, size=n) - 0.3 * positive
    if ties:  # rounded scores: ties within and across classes
        a, b = np.round(a, 1), np.round(b, 1)
    return positive, np.stack([a, b])


def delong_by_definition(scores, positive):
    """Placement values from psi over every (positive, negative) pair (DeLong et al. 1988)."""
    x, y = scores[:, positive], scores[:, ~positive]
    m, n = x.shape[1], y.shape[1]
    psi = (x[:, :, None] > y[:, None, :]) + 0.5 * (x[:, :, None] == y[:, None, :])
    v10, v01 = psi.mean(axis=2), psi.mean(axis=1)
    auc = v10.mean(axis=1)
    s10 = np.array([[np.sum((v10[r] - auc[r]) * (v10[s] - auc[s])) / (m - 1) for s in range(2)]
                    for r in range(2)])
    s01 = np.array([[np.sum((v01[r] - auc[r]) * (v01[s] - auc[s])) / (n - 1) for s in range(2)]
                    for r in range(2)])
    return auc, s10 / m + s01 / n


@pytest.mark.parametrize("ties", [False, True])
def test_fast_delong_equals_the_definition(ties):
    positive, scores = two_models(ties=ties)
    aurocs, covariance = auroc_covariance(scores, positive)
    expected_auc, expected_cov = delong_by_definition(scores, positive)
    np.testing.assert_allclose(aurocs, expected_auc, rtol=1e-12)
    np.testing.assert_allclose(aurocs, [skm.roc_auc_score(positive, s) for s in scores])
    np.testing.assert_allclose(covariance, expected_cov, rtol=1e-10)
    test = contrast_test(scores, positive, [1, -1])
    variance = expected_cov[0, 0] + expected_cov[1, 1] - 2 * expected_cov[0, 1]
    z = (expected_auc[0] - expected_auc[1]) / np.sqrt(variance)
    assert test.difference == pytest.approx(expected_auc[0] - expected_auc[1])
    assert test.p_value == pytest.approx(2 * (1 - stats.norm.cdf(abs(z))))
    assert test.ci[0] == pytest.approx(test.difference - 1.959964 * np.sqrt(variance))


def psi(x, y):
    return 1.0 if x > y else 0.5 if x == y else 0.0


def obuchowski_by_definition(scores, positive, clusters):
    """Obuchowski (1997), written out with loops: V10 and V01 from psi over every (positive,
    negative) pair of the whole sample, summed per cluster; S10, S01, S11 and the covariance
    S10/M + S01/N + (S11_rs + S11_sr)/(M N)."""
    k = len(scores)
    pos = [i for i in range(len(positive)) if positive[i]]
    neg = [i for i in range(len(positive)) if not positive[i]]
    big_m, big_n = len(pos), len(neg)
    names = sorted(set(clusters))
    v10 = [{i: sum(psi(scores[r][i], scores[r][j]) for j in neg) / big_n for i in pos}
           for r in range(k)]
    v01 = [{j: sum(psi(scores[r][i], scores[r][j]) for i in pos) / big_m for j in neg}
           for r in range(k)]
    theta = [sum(v10[r].values()) / big_m for r in range(k)]
    m_c = {c: sum(1 for i in pos if clusters[i] == c) for c in names}
    n_c = {c: sum(1 for j in neg if clusters[j] == c) for c in names}
    v10_c = [{c: sum(v10[r][i] for i in pos if clusters[i] == c) for c in names}
             for r in range(k)]
    v01_c = [{c: sum(v01[r][j] for j in neg if clusters[j] == c) for c in names}
             for r in range(k)]
    i10 = sum(1 for c in names if m_c[c] > 0)
    i01 = sum(1 for c in names if n_c[c] > 0)
    i_all = len(names)

    def s11(r, s):
        return i_all / (i_all - 1) * sum((v10_c[r][c] - m_c[c] * theta[r])
                                         * (v01_c[s][c] - n_c[c] * theta[s]) for c in names)

    cov = np.zeros((k, k))
    for r in range(k):
        for s in range(k):
            s10 = i10 / ((i10 - 1) * big_m) * sum(
                (v10_c[r][c] - m_c[c] * theta[r]) * (v10_c[s][c] - m_c[c] * theta[s])
                for c in names)
            s01 = i01 / ((i01 - 1) * big_n) * sum(
                (v01_c[r][c] - n_c[c] * theta[r]) * (v01_c[s][c] - n_c[c] * theta[s])
                for c in names)
            cov[r, s] = s10 / big_m + s01 / big_n + (s11(r, s) + s11(s, r)) / (big_m * big_n)
    return np.array(theta), cov


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clustered_delong_equals_obuchowskis_formulas(seed):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 5, 9)  # 9 patients with 1-4 images
    clusters = np.repeat([f"p{c}" for c in range(9)], sizes)
    positive = rng.uniform(size=len(clusters)) < 0.4
    positive[:2], positive[-2:] = True, False  # both classes in two patients at least
    scores = np.round(rng.normal(size=(3, len(clusters))) + positive, 1)  # ties
    aurocs, covariance = clustered_auroc_covariance(scores, positive, clusters)
    expected_auc, expected_cov = obuchowski_by_definition(scores.tolist(), positive.tolist(),
                                                          clusters.tolist())
    np.testing.assert_allclose(aurocs, expected_auc, rtol=1e-12)
    np.testing.assert_allclose(covariance, expected_cov, rtol=1e-10, atol=1e-15)
    test = contrast_test(scores[:2], positive, [1, -1], clusters)
    variance = expected_cov[0, 0] + expected_cov[1, 1] - 2 * expected_cov[0, 1]
    z = (expected_auc[0] - expected_auc[1]) / np.sqrt(variance)
    assert test.test == CLUSTERED_DELONG and test.clusters == 9
    assert (test.positives, test.negatives) == (positive.sum(), (~positive).sum())
    assert test.p_value == pytest.approx(2 * stats.norm.sf(abs(z)))


def test_with_one_image_per_patient_the_clustered_test_is_delongs():
    positive, scores = two_models(n=60, seed=3)
    patients = np.array([f"p{i}" for i in range(60)])
    clustered = clustered_auroc_covariance(scores, positive, patients)
    image_level = auroc_covariance(scores, positive)
    np.testing.assert_allclose(clustered[0], image_level[0], rtol=1e-12)
    np.testing.assert_allclose(clustered[1], image_level[1], rtol=1e-10)
    test = contrast_test(scores, positive, [1, -1], patients)
    assert test.test == DELONG and test.clusters == 60
    assert test.p_value == contrast_test(scores, positive, [1, -1]).p_value


def test_clustered_delong_needs_two_patients_of_each_class():
    positive = np.array([True, True, True, False, False, False])
    with pytest.raises(ValueError, match="2 patients with a positive"):
        clustered_auroc_covariance(np.arange(6.0), positive, ["a", "a", "a", "b", "c", "c"])


def test_clustered_delong_holds_its_level_under_the_null_where_image_level_delong_does_not():
    """Patients with 1-10 images: disease, a patient effect shared by both models and one of
    each model's own make the images of a patient correlated; both models have the same
    AUROC. 600 simulated studies of 150 patients."""
    rng = np.random.default_rng(2026)
    datasets, patients, alpha = 600, 150, 0.05
    rejected = {CLUSTERED_DELONG: 0, DELONG: 0}
    for _ in range(datasets):
        clusters = np.repeat(np.arange(patients), rng.integers(1, 11, patients))
        diseased = rng.uniform(size=patients) < 0.4
        positive = rng.uniform(size=len(clusters)) < np.where(diseased, 0.7, 0.15)[clusters]
        shared = rng.normal(size=patients)[clusters]
        own = 0.8 * rng.normal(size=(2, patients))[:, clusters]
        scores = positive + shared + own + rng.normal(size=(2, len(clusters)))
        for test in (contrast_test(scores, positive, [1, -1], clusters),
                     contrast_test(scores, positive, [1, -1])):
            rejected[test.test] += test.p_value < alpha
    clustered_rate = rejected[CLUSTERED_DELONG] / datasets
    image_rate = rejected[DELONG] / datasets
    assert 0.03 <= clustered_rate <= 0.07, clustered_rate
    assert image_rate > 0.09 and image_rate > clustered_rate + 0.04, (image_rate, clustered_rate)


def test_paired_bootstrap_equals_a_plain_loop_over_shared_resamples():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 90)
    groups = [f"p{i // 3}" for i in range(90)]
    task = tasks.multiclass("abc")

    def scores(strength):
        logits = rng.normal(size=(90, 3)) + strength * np.eye(3)[labels]
        return np.exp(logits) / np.exp(logits).sum(1, keepdims=True)

    a_runs, b_runs = [scores(2.0), scores(1.8)], [scores(0.8)]
    result = paired_bootstrap([metric_function(task, labels, s) for s in a_runs],
                              [metric_function(task, labels, s) for s in b_runs], groups,
                              ["accuracy"], samples=150, seed=5)["accuracy"]
    differences = []
    for weights in resample_weights(groups, 150, 5):
        acc = [np.average(s.argmax(1) == labels, weights=weights) for s in a_runs + b_runs]
        differences.append((acc[0] + acc[1]) / 2 - acc[2])
    full = [np.mean(s.argmax(1) == labels) for s in a_runs + b_runs]
    assert result.difference == pytest.approx((full[0] + full[1]) / 2 - full[2])
    assert result.ci == pytest.approx((np.percentile(differences, 2.5),
                                       np.percentile(differences, 97.5)))
    tail = min(sum(d <= 0 for d in differences), sum(d >= 0 for d in differences))
    assert result.p_value == pytest.approx(min(1, 2 * (1 + tail) / 151))
    assert result.valid == result.samples == 150


def test_holm_equals_the_step_down_formula():
    p = [0.01, 0.04, 0.03, 0.2, 0.001]
    order = np.argsort(p)
    expected, running = np.empty(5), 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (5 - rank) * p[index]))
        expected[index] = running
    assert holm(p) == pytest.approx(list(expected))


def brute_force(positive, scores, objective):
    best_value, best = -np.inf, None
    for t in np.unique(scores):
        r = rates(positive, scores, t)
        value = objective(r)
        if value > best_value + 1e-12 or (abs(value - best_value) <= 1e-12 and t > best):
            best_value, best = value, t
    return best


def test_thresholds_maximise_f1_and_youden_like_a_search_over_every_score():
    rng = np.random.default_rng(3)
    positive = rng.uniform(size=200) < 0.3
    scores = np.round(expit(rng.normal(size=200) + 1.5 * positive), 2)
    assert f1_threshold(positive, scores) == brute_force(
        positive, scores, lambda r: r["f1"] or 0.0)
    assert youden_threshold(positive, scores) == brute_force(
        positive, scores, lambda r: r["sensitivity"] + r["specificity"] - 1)


def test_operating_points_are_chosen_on_val_and_applied_to_test():
    rng = np.random.default_rng(4)
    task = tasks.multilabel(["x", "y"])

    def split(n):
        labels = (rng.uniform(size=(n, 2)) < 0.3).astype(np.int64)
        labels[::7, 1] = tasks.MASKED
        return labels, expit(rng.normal(size=(n, 2)) + 2 * (labels == 1))

    val, test = split(120), split(100)
    points = operating_points(task, val, test)
    keep = val[0][:, 1] != tasks.MASKED
    threshold = f1_threshold(val[0][keep, 1] == 1, val[1][keep, 1])
    assert points["labels"]["y"]["f1"]["threshold"] == threshold
    keep_test = test[0][:, 1] != tasks.MASKED
    called = test[1][keep_test, 1] >= threshold
    truth = test[0][keep_test, 1] == 1
    assert points["labels"]["y"]["f1"]["test"]["f1"] == pytest.approx(
        skm.f1_score(truth, called))
    assert points["labels"]["x"]["fixed"]["test"]["sensitivity"] == pytest.approx(
        skm.recall_score(test[0][:, 0] == 1, test[1][:, 0] >= 0.5))
    assert points["macro"]["youden"]["test"]["specificity"] == pytest.approx(np.mean(
        [points["labels"][n]["youden"]["test"]["specificity"] for n in ("x", "y")]))


def exact_best(positive, scores, objective):
    """The highest score maximising `objective(tp, fp, fn, tn)` (a Fraction), counted by a loop."""
    best = None
    for threshold in sorted(set(scores.tolist())):
        called = [s >= threshold for s in scores.tolist()]
        tp = sum(c and p for c, p in zip(called, positive))
        fp = sum(c and not p for c, p in zip(called, positive))
        fn = sum(not c and p for c, p in zip(called, positive))
        tn = sum(not c and not p for c, p in zip(called, positive))
        value = objective(tp, fp, fn, tn)
        if best is None or value >= best[0]:  # ascending: equal values go to the higher
            best = (value, threshold)
    return best[1]


def exact_youden(tp, fp, fn, tn):
    return Fraction(tp, tp + fn) + Fraction(tn, tn + fp) - 1


def exact_f1(tp, fp, fn, tn):
    return Fraction(2 * tp, 2 * tp + fp + fn)


def test_exact_ties_go_to_the_highest_threshold():
    # Youden: J = 0.4 - 0.2 at 0.7 and 0.8 - 0.6 at 0.3, equal, though not in floating point.
    assert 0.8 - 0.6 != 0.4 - 0.2
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    positive = np.array([0, 1, 1, 0, 0, 1, 1, 0, 0, 1], bool)
    assert youden_threshold(positive, scores) == 0.7
    # F1 = 6/9 at 0.4 and 8/12 at 0.1 (P = 4), the maximum.
    scores = np.array([0.5, 0.8, 0.3, 0.7, 0.2, 0.4, 0.7, 0.1])
    positive = np.array([1, 0, 0, 0, 0, 1, 1, 1], bool)
    assert f1_threshold(positive, scores) == 0.4
    # Scores tied across classes: 0.6 calls 2 of 2 positives and 1 of 2 negatives (J = 1/2),
    # as does 0.3 (J = 1 - 1/2); ties again go up.
    assert youden_threshold(np.array([1, 0, 1, 0], bool), np.array([0.6, 0.6, 0.6, 0.3])) == 0.6


def test_thresholds_equal_an_exact_search_on_many_one_decimal_datasets():
    rng = np.random.default_rng(29)
    checked = 0
    for _ in range(1500):
        n = int(rng.integers(4, 16))
        positive = rng.uniform(size=n) < rng.uniform(0.2, 0.8)
        if positive.all() or not positive.any():
            continue
        scores = rng.integers(0, 10, n) / 10
        assert youden_threshold(positive, scores) == exact_best(positive, scores, exact_youden)
        assert f1_threshold(positive, scores) == exact_best(positive, scores, exact_f1)
        checked += 1
    assert checked > 1200
