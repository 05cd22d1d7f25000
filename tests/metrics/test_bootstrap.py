"""Patient bootstrap: fixed label sets for means, undefined resamples counted, few groups said."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from jaxtl.core import tasks
from jaxtl.metrics import task_metrics
from jaxtl.metrics.bootstrap import FEW_GROUPS, resample_weights


def rare_label_split(n=120, seed=0):
    """Label 'rare' has two positives, on two patients: many resamples lose both."""
    rng = np.random.default_rng(seed)
    labels = np.stack([rng.integers(0, 2, n), np.zeros(n, np.int64)], axis=1)
    labels[[3, 50], 1] = 1
    logits = rng.normal(size=(n, 2)) + 2 * (labels - 0.5)
    groups = [f"p{i // 2}" for i in range(n)]
    return tasks.multilabel(["common", "rare"]), labels, logits, groups


def test_a_mean_over_labels_is_undefined_where_one_label_is_and_those_resamples_are_counted():
    task, labels, logits, groups = rare_label_split()
    samples = 100
    result = task_metrics(task, labels, logits, groups, bootstrap_samples=samples, seed=0)
    # A plain loop over the same resamples: the mean is over both labels or undefined.
    means, rare_defined = [], 0
    for weights in resample_weights(groups, samples, 0):
        aurocs = []
        for i in range(2):
            keep = weights > 0
            y = labels[keep, i]
            if 0 < y.sum() < len(y):
                aurocs.append(skm.roc_auc_score(y, logits[keep, i], sample_weight=weights[keep]))
        rare_defined += len(aurocs) == 2
        if len(aurocs) == 2:
            means.append(np.mean(aurocs))
    assert 0 < rare_defined < samples  # the case the rule is about happens here
    valid = result["bootstrap_valid"]
    assert valid["mean_auroc"] == rare_defined == valid["auroc"]["rare"]
    assert valid["auroc"]["common"] == samples
    assert result["mean_auroc_ci"] == pytest.approx(
        [np.percentile(means, 2.5), np.percentile(means, 97.5)])
    assert "undefined in some resamples" in result["bootstrap_note"]
    assert result["bootstrap_groups"] == 60 and result["bootstrap_samples"] == samples


def test_few_groups_are_said_in_the_results():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 140)
    logits = rng.normal(size=(140, 3)) + 2 * np.eye(3)[labels]
    tiles = [f"tile{i % 14}" for i in range(140)]  # CoNSeP: ~14 test tiles
    few = task_metrics(tasks.multiclass("abc"), labels, logits, tiles, bootstrap_samples=20)
    assert few["bootstrap_groups"] == 14 < FEW_GROUPS
    assert "only 14 patients (groups)" in few["bootstrap_note"]
    many = task_metrics(tasks.multiclass("abc"), labels, logits, bootstrap_samples=20)
    assert many["bootstrap_groups"] == 140 and "bootstrap_note" not in many
    assert many["bootstrap_valid"]["kappa"] == 20
