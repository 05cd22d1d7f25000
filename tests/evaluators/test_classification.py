"""The classification evaluator on the starting models of tiny demo runs (EyePACS multiclass,
CheXpert multilabel): every validation image once, in record order, also when the last batch
is padded; the metrics are those of the saved predictions, computed here by hand; the
per-epoch and the final scores agree."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny_config

from jaxtl import evaluators
from jaxtl.config import demo_settings as demo
from jaxtl.core.tasks import NEGATIVE, POSITIVE
from jaxtl.engine.build import build
from jaxtl.evaluators.classification import ClassificationEvaluator
from jaxtl.workdir import files as rundir

pytestmark = pytest.mark.slow

EVAL_BATCH = 7  # divides neither demo's validation split: the last batch is padded


def scored_run(folder, config_name):
    """(run, evaluator, final results, the per-epoch score of val, val's saved predictions)
    of the configured run's starting model."""
    config = tiny_config(folder, config_name, {"eval.batch_size": EVAL_BATCH})
    demo.apply(config)
    run, state = build(config)
    evaluator = evaluators.for_task(run.splits.task)
    results = evaluator.final_results(run, state, folder)
    per_epoch = evaluator.score_split(run, state, run.splits.val)
    with np.load(rundir.predictions_file(folder, "val")) as saved:
        predictions = dict(saved)
    run.close_feeds()
    return run, evaluator, results, per_epoch, predictions


@pytest.fixture(scope="module")
def multiclass(tmp_path_factory):
    return scored_run(tmp_path_factory.mktemp("eyepacs"), "eyepacs")


@pytest.fixture(scope="module")
def multilabel(tmp_path_factory):
    return scored_run(tmp_path_factory.mktemp("chexpert"), "chexpert")


def quadratic_kappa(labels: np.ndarray, predicted: np.ndarray, classes: int) -> float:
    observed = np.zeros((classes, classes))
    np.add.at(observed, (labels, predicted), 1.0)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / len(labels)
    grid = np.arange(classes)
    weights = (grid[:, None] - grid[None, :]) ** 2 / (classes - 1) ** 2
    return float(1.0 - (weights * observed).sum() / (weights * expected).sum())


def pairwise_auroc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counted half."""
    above = (positives[:, None] > negatives[None, :]).mean()
    tied = (positives[:, None] == negatives[None, :]).mean()
    return float(above + tied / 2)


@pytest.mark.parametrize("kind", ["multiclass", "multilabel"])
def test_every_validation_image_is_scored_once_in_record_order(kind, request):
    run, evaluator, results, _, predictions = request.getfixturevalue(kind)
    records = run.splits.val
    assert run.splits.task.kind == kind and isinstance(evaluator, ClassificationEvaluator)
    assert len(records) % EVAL_BATCH != 0
    assert list(predictions["image_ids"]) == [r.image_id for r in records]
    assert list(predictions["patients"]) == [r.patient for r in records]
    np.testing.assert_array_equal(predictions["labels"], [r.label for r in records])
    assert results["val"]["count"] == len(records)


def test_multiclass_metrics_are_those_of_the_saved_predictions(multiclass):
    run, _, results, _, predictions = multiclass
    labels, probabilities = predictions["labels"], predictions["scores"]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    predicted = probabilities.argmax(axis=1)
    val = results["val"]
    assert val["accuracy"] == pytest.approx(float(np.mean(predicted == labels)))
    assert val["loss"] == pytest.approx(
        float(-np.mean(np.log(probabilities[np.arange(len(labels)), labels]))), rel=1e-6)
    assert val["kappa"] == pytest.approx(
        quadratic_kappa(labels, predicted, len(run.splits.task.names)), abs=1e-12)
    low, high = val["kappa_ci"]
    assert low <= val["kappa"] <= high


def test_multilabel_aurocs_are_those_of_the_saved_predictions(multilabel):
    run, _, results, _, predictions = multilabel
    labels, scores = predictions["labels"], predictions["scores"]
    val = results["val"]
    expected = {}
    for index, name in enumerate(run.splits.task.names):
        positives = scores[labels[:, index] == POSITIVE, index]
        negatives = scores[labels[:, index] == NEGATIVE, index]
        if len(positives) and len(negatives):
            expected[name] = pairwise_auroc(positives, negatives)
            assert val["auroc"][name] == pytest.approx(expected[name]), name
        else:
            assert val["auroc"][name] is None, name
    assert expected  # some label has both classes in the demo's validation split
    if len(expected) == len(run.splits.task.names):
        assert val["mean_auroc"] == pytest.approx(np.mean(list(expected.values())))


@pytest.mark.parametrize("kind, keys", [
    ("multiclass", ("count", "accuracy", "kappa", "loss", "ece")),
    ("multilabel", ("count", "auroc", "mean_auroc", "loss", "macro_f1")),
])
def test_the_per_epoch_score_is_the_final_point_estimate(kind, keys, request):
    _, _, results, per_epoch, _ = request.getfixturevalue(kind)
    for key in keys:
        assert per_epoch[key] == pytest.approx(results["val"][key]), key
    assert not any(key.endswith("_ci") for key in per_epoch)  # intervals: final results only
