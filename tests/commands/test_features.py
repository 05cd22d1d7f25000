"""Pooled features of every split and the logistic-regression probe on them."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from conftest import tiny_config
from programs import run_programs
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, cohen_kappa_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from jaxtl.commands import features
from jaxtl.commands.features import SplitFeatures, fit_probe
from jaxtl.core import tasks
from jaxtl.data import loading
from jaxtl.data.transforms import EvalExample
from jaxtl.engine.build import build_model, image_transform


@pytest.fixture(scope="module")
def probe_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("features")
    config = tiny_config(tmp)
    config.demo.arch = config.model.arch = "small_cnn"
    config.demo.num_patients = 60
    config.demo.bootstrap_samples = 20  # the demo sets eval.bootstrap_samples
    config.probe.c_values = (0.01, 1.0)
    results = features.extract_and_probe(config, tmp / "workdir")
    return tmp / "workdir", config, results


@pytest.mark.slow
def test_features_of_every_split_in_record_order(probe_run):
    workdir, config, _ = probe_run
    splits = loading.load_splits(config)
    mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ("data",))
    model, variables = build_model(config, splits.task, mesh)
    transform = image_transform(config, augment=False)
    for split in ("train", "val", "test"):
        records = splits.split(split)
        saved = np.load(workdir / "features" / f"{split}.npz")
        assert saved["features"].shape == (len(records), 256)  # small_cnn's pooled width
        assert list(saved["image_id"]) == [r.image_id for r in records]
        assert list(saved["patient"]) == [r.patient for r in records]
        np.testing.assert_array_equal(saved["labels"], [r.label for r in records])
        # every feature row is the backbone's output for that image, one image at a time
        for index in (0, len(records) // 2, len(records) - 1):
            image = EvalExample(transform)((records[index], index))["image"]  # uint8
            _, out = model.apply(variables, transform.normalisation(image[None]), train=False)
            expected = out["pre_logits"]
            np.testing.assert_allclose(saved["features"][index], np.asarray(expected)[0],
                                       rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_probe_results_match_scikit_learn_in_the_training_run_format(probe_run):
    workdir, config, results = probe_run
    saved = json.loads((workdir / "results.json").read_text())
    assert saved["demo"] is True and saved["method"] == "logistic_regression_probe"
    probe = saved["probe"]
    assert probe["C"] in config.probe.c_values and probe["feature_dim"] == 256
    assert set(probe["val_kappa_by_C"]) == {"0.01", "1"}
    assert probe["val_kappa_by_C"][f"{probe['C']:g}"] == max(probe["val_kappa_by_C"].values())
    # the same metric names as a training run's results (the lead's task_metrics)
    from jaxtl.metrics import task_metrics

    task = tasks.multiclass([str(g) for g in range(5)])
    reference_keys = set(task_metrics(task, np.arange(5), np.eye(5), [str(i) for i in range(5)],
                                      bootstrap_samples=5))
    assert set(saved["val"]) == reference_keys == set(saved["test"])

    train, val = (np.load(workdir / "features" / f"{s}.npz") for s in ("train", "val"))
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=probe["C"], max_iter=1000))
    pipeline.fit(train["features"], train["labels"])
    predicted = pipeline.predict(val["features"])
    assert saved["val"]["accuracy"] == pytest.approx(accuracy_score(val["labels"], predicted))
    assert saved["val"]["kappa"] == pytest.approx(
        cohen_kappa_score(val["labels"], predicted, weights="quadratic"), abs=1e-9)
    assert results["val"] == saved["val"]


def synthetic(n=120, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return rng, x


def test_multilabel_probe_fits_each_label_on_its_counted_entries():
    rng, x = synthetic()
    binary = (x[:, 0] + 0.3 * rng.normal(size=len(x)) > 0).astype(int)
    binary[:30] = tasks.MASKED  # masked entries are left out of the fit
    three = np.digitize(x[:, 1], [-0.5, 0.5])  # 0, 1, 2 (uncertain)
    labels = np.stack([binary, three], axis=1).astype(np.int32)
    task = tasks.multilabel(["a", "b"], three_way=[False, True])
    probe = fit_probe(task, SplitFeatures(x, labels), c=0.5, max_iter=1000)
    logits = probe.logits(x)
    assert logits.shape == (len(x), 4)  # 1 binary logit + 3 three-way logits

    scaled = StandardScaler().fit_transform(x)
    counted = binary >= 0
    reference = LogisticRegression(C=0.5, max_iter=1000).fit(scaled[counted], binary[counted])
    np.testing.assert_allclose(logits[:, 0], reference.decision_function(scaled), rtol=1e-6)
    three_ref = LogisticRegression(C=0.5, max_iter=1000).fit(scaled, three)
    np.testing.assert_allclose(logits[:, 1:], three_ref.decision_function(scaled), rtol=1e-6)


def test_hierarchical_child_is_fitted_where_its_parent_is_positive():
    _, x = synthetic(seed=1)
    parent = (x[:, 0] > 0).astype(int)
    child = (x[:, 1] > 0).astype(int)
    task = tasks.multilabel(["parent", "child"], parents=[-1, 0])
    probe = fit_probe(task, SplitFeatures(x, np.stack([parent, child], 1).astype(np.int32)),
                      c=1.0, max_iter=1000)
    scaled = StandardScaler().fit_transform(x)
    reference = LogisticRegression(max_iter=1000).fit(scaled[parent == 1], child[parent == 1])
    np.testing.assert_allclose(probe.logits(x)[:, 1], reference.decision_function(scaled),
                               rtol=1e-6)


def test_a_label_with_one_class_gets_its_smoothed_prior_and_absent_classes_get_no_mass():
    _, x = synthetic(seed=2)
    all_negative = np.zeros(len(x), np.int32)
    task = tasks.multilabel(["rare"])
    probe = fit_probe(task, SplitFeatures(x, all_negative[:, None]), c=1.0, max_iter=1000)
    prior = 0.5 / (len(x) + 1.0)
    np.testing.assert_allclose(probe.logits(x)[:, 0], np.log(prior / (1 - prior)))

    classes = np.where(x[:, 0] > 0, 0, 3).astype(np.int32)  # classes 1, 2, 4 never seen
    task = tasks.multiclass(["0", "1", "2", "3", "4"])
    logits = fit_probe(task, SplitFeatures(x, classes), c=1.0, max_iter=1000).logits(x)
    assert np.all(logits[:, [1, 2, 4]] == features.ABSENT_CLASS_LOGIT)
    predicted = np.argmax(logits, axis=1)
    assert set(predicted) <= {0, 3} and np.mean(predicted == classes) > 0.9


def test_command_line_reports_a_bad_config_in_one_line(tmp_path):
    (result,) = run_programs([("jaxtl.commands.features", [
        "--config", "configs/eyepacs.py", "--workdir", str(tmp_path / "w"),
        "--config.probe.c_values=()"])], timeout=300)
    assert result.returncode == 2
    assert "config.probe.c_values is (); give at least one C" in result.stderr


def test_backbone_weights_come_from_model_init(tmp_path):
    import orbax.checkpoint as ocp

    config = tiny_config(tmp_path)
    config.model.arch = "small_cnn"
    task = tasks.multiclass(("0", "1", "2", "3", "4"))
    mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ("data",))
    random = jax.device_get(build_model(config, task, mesh)[1])
    # a run's best checkpoint whose backbone differs from the random one
    pretrained = jax.tree.map(lambda x: np.asarray(x) + 1.0, random)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "run" / "best" / "7" / "state", pretrained)
    checkpointer.wait_until_finished()
    config.model.init = str(tmp_path / "run")
    loaded = jax.device_get(build_model(config, task, mesh)[1])
    for collection in ("params", "batch_stats"):
        jax.tree.map(np.testing.assert_array_equal, loaded[collection]["backbone"],
                     pretrained[collection]["backbone"])
    jax.tree.map(np.testing.assert_array_equal, loaded["params"]["head"],
                 random["params"]["head"])  # the head is the new task's, not the checkpoint's
