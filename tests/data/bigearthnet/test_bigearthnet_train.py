"""BigEarthNet end to end on tiny demo data: 12-band and 10-band inputs reach a model made for
them, training runs multi-label, and the reported metrics are scikit-learn's."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from conftest import tiny_config
from sklearn import metrics as skm

from jaxtl.config import demo_settings as demo
from jaxtl.core import tasks
from jaxtl.data.bigearthnet.labels import LABELS_19
from jaxtl.engine import transfer
from jaxtl.engine.build import build
from jaxtl.metrics import task_metrics
from jaxtl.training import loop as train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One demo dataset for the module's runs."""
    return tmp_path_factory.mktemp("cache")


def first_convolution_channels(variables) -> set[int]:
    """The input channels of the model's 4-D kernels (the first convolution's among them)."""
    return {leaf.shape[2] for leaf in jax.tree_util.tree_leaves(variables) if leaf.ndim == 4}


def test_a_twelve_band_run_trains_multilabel_and_reports_its_metrics(cache, tmp_path):
    """The 12-band stack (bigearthnet:all) of the band-stack test below, trained for real: its
    model's first convolution takes 12 channels, so the trained batches had 12."""
    workdir = tmp_path / "run"
    # 2 bootstrap resamples, not the tiny runs' 10: each resample scores 19 labels with
    # scikit-learn (over half of this run's time at 10); the intervals only need to be there
    config = tiny_config(cache, "bigearthnet:all", {"demo.bootstrap_samples": 2})
    results = train.train_and_evaluate(config, workdir)
    assert results["task"] == {"kind": "multilabel", "names": list(LABELS_19),
                               "three_way": [False] * 19, "parents": [-1] * 19}
    for key in ("micro_f1", "macro_f1", "mean_ap", "micro_ap", "mean_auroc"):
        assert key in results["test"] and f"{key}_ci" in results["test"]
    assert results["split_sizes"] == {"train": 36, "val": 12, "test": 12}
    assert 12 in first_convolution_channels(transfer.load_variables(workdir)["params"])
    losses = [row["loss"] for row in map(json.loads, (workdir / "metrics.jsonl").read_text()
                                         .splitlines()) if row["split"] == "train"]
    assert losses and np.isfinite(losses).all() and results["steps"] >= 1


# The 12-band stack ("all", 12 channels) trains in the run above.
@pytest.mark.parametrize("bands, channels", [("10m20m", 10)])
def test_band_stacks_reach_a_model_with_as_many_input_channels(cache, bands, channels):
    config = tiny_config(cache, f"bigearthnet:{bands}")
    demo.apply(config)
    run, state = build(config)
    batch = next(run.stream.iterator())
    assert batch["image"].shape == (8, 32, 32, channels) and batch["label"].shape == (8, 19)
    assert channels in first_convolution_channels(state.params)  # the first convolution
    new_state, metrics = run.train_step(0)(state, batch)  # the step function of step 0
    assert np.isfinite(jax.device_get(metrics["loss"]))
    assert int(new_state.step) == 1


def test_multilabel_metrics_are_scikit_learns():
    rng = np.random.default_rng(0)
    labels = (rng.uniform(size=(200, 19)) < 0.2).astype(np.int64)
    labels[:, 3] = 0  # a label no image has
    logits = rng.normal(size=(200, 19)) + 2.0 * labels
    task = tasks.multilabel(LABELS_19)
    got = task_metrics(task, labels, logits)
    predicted = 1 / (1 + np.exp(-logits)) >= 0.5
    assert got["micro_f1"] == pytest.approx(skm.f1_score(labels, predicted, average="micro"))
    assert got["macro_f1"] == pytest.approx(skm.f1_score(labels, predicted, average="macro",
                                                         zero_division=0.0))
    present = labels.any(0)
    scores = 1 / (1 + np.exp(-logits))
    assert got["mean_ap"] == pytest.approx(skm.average_precision_score(
        labels[:, present], scores[:, present], average="macro"))
    assert got["micro_ap"] == pytest.approx(skm.average_precision_score(
        labels, scores, average="micro"))
    assert got["ap"][LABELS_19[3]] is None  # undefined for a label without positives
