"""DeLong's paired test against its O(n^2) definition; the paired bootstrap against a plain loop;
Holm against its step-down formula; operating points against a brute-force search."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.special import expit
from sklearn import metrics as skm

from jaxtl.core import tasks
from jaxtl.metrics import metric_function
from jaxtl.metrics.bootstrap import resample_weights
from jaxtl.metrics.delong import auroc_covariance, contrast_test
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
