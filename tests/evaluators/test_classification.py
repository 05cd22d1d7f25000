"""The classification evaluator on a tiny EyePACS demo run's starting model: every validation
image once, in record order, also when the last batch is padded; the metrics are those of the
saved predictions, computed here by hand; the per-epoch and the final scores agree."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import tiny_config
from jaxtl import evaluators
from jaxtl.config import demo_settings as demo
from jaxtl.engine.build import build
from jaxtl.evaluators.classification import ClassificationEvaluator
from jaxtl.workdir import files as rundir

pytestmark = pytest.mark.slow

EVAL_BATCH = 7  # does not divide the demo's validation split: the last batch is padded


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eyepacs")
    config = tiny_config(tmp, "eyepacs", {"eval.batch_size": EVAL_BATCH})
    demo.apply(config)
    run, state = build(config)
    evaluator = evaluators.for_task(run.splits.task)
    results = evaluator.final_results(run, state, tmp)
    per_epoch = evaluator.score_split(run, state, run.splits.val)
    with np.load(rundir.predictions_file(tmp, "val")) as saved:
        predictions = dict(saved)
    run.close_feeds()
    return run, evaluator, results, per_epoch, predictions


def quadratic_kappa(labels: np.ndarray, predicted: np.ndarray, classes: int) -> float:
    observed = np.zeros((classes, classes))
    np.add.at(observed, (labels, predicted), 1.0)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / len(labels)
    grid = np.arange(classes)
    weights = (grid[:, None] - grid[None, :]) ** 2 / (classes - 1) ** 2
    return float(1.0 - (weights * observed).sum() / (weights * expected).sum())


def test_every_validation_image_is_scored_once_in_record_order(scored):
    run, evaluator, results, _, predictions = scored
    records = run.splits.val
    assert isinstance(evaluator, ClassificationEvaluator)
    assert len(records) % EVAL_BATCH != 0
    assert list(predictions["image_ids"]) == [r.image_id for r in records]
    assert list(predictions["patients"]) == [r.patient for r in records]
    np.testing.assert_array_equal(predictions["labels"], [r.label for r in records])
    assert results["val"]["count"] == len(records)


def test_the_metrics_are_those_of_the_saved_predictions(scored):
    run, _, results, _, predictions = scored
    labels, probabilities = predictions["labels"], predictions["scores"]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    predicted = probabilities.argmax(axis=1)
    val = results["val"]
    assert val["accuracy"] == pytest.approx(float(np.mean(predicted == labels)))
    assert val["loss"] == pytest.approx(
        float(-np.mean(np.log(probabilities[np.arange(len(labels)), labels]))), rel=1e-6)
    if len(set(labels) | set(predicted)) > 1:  # one class for both: no agreement beyond chance
        assert val["kappa"] == pytest.approx(
            quadratic_kappa(labels, predicted, len(run.splits.task.names)))
    else:
        assert val["kappa"] == 0.0
    low, high = val["kappa_ci"]
    assert low <= val["kappa"] <= high


def test_the_per_epoch_score_is_the_final_point_estimate(scored):
    _, _, results, per_epoch, _ = scored
    for key in ("count", "accuracy", "kappa", "loss", "ece"):
        assert per_epoch[key] == pytest.approx(results["val"][key]), key
    assert "kappa_ci" not in per_epoch  # intervals only in the final results
