"""The classification evaluator on the starting models of tiny demo runs (EyePACS multiclass,
CheXpert multilabel): every validation image once, in record order, also when the last batch
is padded; the metrics are those of the saved predictions, computed here by hand; the
per-epoch and the final scores agree; the temperatures fitted on validation are scipy's
minimisers of the saved predictions' log-loss, and the calibrated metrics are those of the
rescaled predictions, as results.json keeps them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import tiny_config
from scipy.optimize import minimize_scalar
from scipy.special import logit, softmax

from jaxtl import evaluators
from jaxtl.config import demo_settings as demo
from jaxtl.core.tasks import NEGATIVE, POSITIVE
from jaxtl.engine.build import build
from jaxtl.evaluators.classification import ClassificationEvaluator
from jaxtl.metrics import temperature
from jaxtl.workdir import files as rundir

pytestmark = pytest.mark.slow

EVAL_BATCH = 7  # divides neither demo's validation split: the last batch is padded


def scored_run(folder, config_name):
    """(run, evaluator, final results, the per-epoch score of val, val's saved predictions,
    the folder of the saved predictions) of the configured run's starting model."""
    config = tiny_config(folder, config_name, {"eval.batch_size": EVAL_BATCH})
    demo.apply(config)
    run, state = build(config)
    evaluator = evaluators.for_task(run.splits.task)
    results = evaluator.final_results(run, state, folder)
    per_epoch = evaluator.score_split(run, state, run.splits.val)
    with np.load(rundir.predictions_file(folder, "val")) as saved:
        predictions = dict(saved)
    run.close_feeds()
    return run, evaluator, results, per_epoch, predictions, folder


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
    run, evaluator, results, _, predictions = request.getfixturevalue(kind)[:5]
    records = run.splits.val
    assert run.splits.task.kind == kind and isinstance(evaluator, ClassificationEvaluator)
    assert len(records) % EVAL_BATCH != 0
    assert list(predictions["image_ids"]) == [r.image_id for r in records]
    assert list(predictions["patients"]) == [r.patient for r in records]
    np.testing.assert_array_equal(predictions["labels"], [r.label for r in records])
    assert results["val"]["count"] == len(records)


def test_multiclass_metrics_are_those_of_the_saved_predictions(multiclass):
    run, _, results, _, predictions, _ = multiclass
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
    run, _, results, _, predictions, _ = multilabel
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
    _, _, results, per_epoch, _ = request.getfixturevalue(kind)[:5]
    for key in keys:
        assert per_epoch[key] == pytest.approx(results["val"][key]), key
    assert not any(key.endswith("_ci") for key in per_epoch)  # intervals: final results only


def log_loss_minimiser(loss):
    """scipy's minimiser over T in jaxtl's bounds of a log-loss(T) written out below."""
    found = minimize_scalar(lambda log_t: loss(np.exp(log_t)), bounds=np.log(temperature.BOUNDS),
                            method="bounded", options={"xatol": 1e-10})
    return float(np.exp(found.x))


def ece_of(confidence, outcome, bins=15):
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for m in range(bins):
        inside = ((confidence > edges[m]) | ((m == 0) & (confidence == 0))) & (
            confidence <= edges[m + 1])
        if inside.any():
            total += inside.mean() * abs(outcome[inside].mean() - confidence[inside].mean())
    return total


def saved(folder, split):
    with np.load(rundir.predictions_file(folder, split)) as arrays:
        return arrays["labels"], arrays["scores"]


@pytest.mark.parametrize("kind", ["multiclass", "multilabel"])
def test_results_json_keeps_the_temperatures_and_the_metrics_before_and_after(
        kind, request, tmp_path):
    _, _, results, _, _ = request.getfixturevalue(kind)[:5]
    rundir.write_results(tmp_path, results)  # as the training loop and evaluate write it
    written = rundir.read_results(tmp_path)
    json.dumps(written, allow_nan=False)
    assert written["calibration"]["fitted_on"] == "val"
    for split in ("val", "test"):
        assert {"ece", "loss", "brier", "calibrated_ece", "calibrated_loss",
                "calibrated_brier"} <= set(written[split]), split
        if kind == "multilabel":
            assert {"mean_ece", "mean_brier", "calibrated_mean_ece",
                    "calibrated_mean_brier"} <= set(written[split]), split


def test_multiclass_temperature_minimises_the_saved_validation_log_loss(multiclass):
    _, _, results, _, _, folder = multiclass
    labels, probabilities = saved(folder, "val")
    log_probabilities = np.log(probabilities)  # the logits up to a constant per image

    def loss(t):
        return float(-np.mean(np.log(softmax(log_probabilities / t, axis=1)[
            np.arange(len(labels)), labels])))

    fitted = results["calibration"]["temperature"]
    assert fitted == pytest.approx(log_loss_minimiser(loss), rel=1e-5)
    for split in ("val", "test"):
        labels, probabilities = saved(folder, split)
        scaled = softmax(np.log(probabilities) / fitted, axis=1)
        onehot = np.eye(probabilities.shape[1])[labels]
        after = results[split]
        assert after["brier"] == pytest.approx(np.mean(np.sum((probabilities - onehot) ** 2, 1)))
        assert after["calibrated_brier"] == pytest.approx(np.mean(np.sum((scaled - onehot) ** 2,
                                                                          1)))
        assert after["calibrated_ece"] == pytest.approx(
            ece_of(scaled.max(1), scaled.argmax(1) == labels))
        assert after["calibrated_loss"] == pytest.approx(
            -np.mean(np.log(scaled[np.arange(len(labels)), labels])), rel=1e-6)
        assert after["ece"] == pytest.approx(  # the metrics before scaling are unchanged
            ece_of(probabilities.max(1), probabilities.argmax(1) == labels))


def test_multilabel_temperature_per_label_minimises_its_saved_validation_log_loss(multilabel):
    run, _, results, _, _, folder = multilabel
    labels, scores = saved(folder, "val")
    fitted = results["calibration"]["temperature"]
    assert set(fitted) == set(run.splits.task.names)
    for index, name in enumerate(run.splits.task.names):
        counted = (labels[:, index] == POSITIVE) | (labels[:, index] == NEGATIVE)
        if not counted.any():
            assert fitted[name] is None, name
            continue
        z, y = logit(scores[counted, index]), labels[counted, index] == POSITIVE

        def loss(t, z=z, y=y):
            return float(np.mean(np.logaddexp(0, z / t) - y * z / t))

        assert fitted[name] == pytest.approx(log_loss_minimiser(loss), rel=1e-5), name
    test_labels, test_scores = saved(folder, "test")
    for index, name in enumerate(run.splits.task.names):
        counted = (test_labels[:, index] == POSITIVE) | (test_labels[:, index] == NEGATIVE)
        if not counted.any():
            continue
        t = 1.0 if fitted[name] is None else fitted[name]
        scaled = 1 / (1 + np.exp(-logit(test_scores[counted, index]) / t))
        y = test_labels[counted, index] == POSITIVE
        assert results["test"]["calibrated_ece"][name] == pytest.approx(ece_of(scaled, y)), name
        assert results["test"]["calibrated_brier"][name] == pytest.approx(
            np.mean((scaled - y) ** 2)), name
