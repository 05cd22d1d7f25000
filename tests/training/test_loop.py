"""End to end on tiny demo data: outputs, exact evaluation, resume, transfer, user errors."""

from __future__ import annotations

import importlib.metadata
import json
import platform

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import tiny_config
from html_pages import html_figures
from layouts.eyepacs import eyepacs_labels, write_eyepacs

from jaxtl import report
from jaxtl.commands import evaluate, features
from jaxtl.core.errors import DataError, TransferError, WorkdirConflict
from jaxtl.data import loading
from jaxtl.data.transforms import EvalExample
from jaxtl.engine import transfer
from jaxtl.engine.build import image_transform
from jaxtl.training import loop as train
from jaxtl.workdir import files as rundir
from jaxtl.workdir.checkpoints import folder_bytes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    config = tiny_config(tmp)
    results = train.train_and_evaluate(config, tmp / "workdir")
    return tmp, config, results


def read_metrics(workdir):
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_run_writes_results_metrics_tensorboard_and_checkpoints(finished_run):
    tmp, config, results = finished_run
    workdir = tmp / "workdir"
    saved = json.loads((workdir / "results.json").read_text())
    assert saved["demo"] is True and results["demo"] is True
    sizes = saved["split_sizes"]
    assert sizes["train"] + sizes["val"] + sizes["test"] == 80  # 40 demo patients x 2 eyes
    assert saved["val"]["count"] == sizes["val"] and saved["test"]["count"] == sizes["test"]
    assert set(saved["val"]) >= {"kappa", "accuracy", "recall", "confusion_matrix", "loss",
                                 "ece", "bootstrap_valid"}
    assert saved["optimizer"] == "SGD + gradual" and saved["loss_weights"] is None
    assert saved["config"]["optim"]["weight_decay_mask"] == "kernels"
    points = saved["operating_points"]["labels"]
    assert set(points) == set(saved["task"]["names"])
    assert all(set(points[name]) == {"fixed", "f1", "youden"} for name in points)
    with np.load(workdir / "predictions_test.npz") as predictions:
        assert len(predictions["image_ids"]) == len(predictions["patients"]) == sizes["test"]
    records = read_metrics(workdir)
    assert all(r["demo"] is True for r in records)
    train_steps = [r["step"] for r in records if r["split"] == "train"]
    assert train_steps == list(range(1, saved["steps"] + 1))
    assert [r["epoch"] for r in records if r["split"] == "val"] == [1, 2]
    assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
    # finished: the latest checkpoints (for resuming) are removed; best/ keeps the model only
    assert not (workdir / rundir.LATEST_DIR).exists()
    [best] = (workdir / rundir.BEST_DIR).iterdir()
    assert set(ocp.StandardCheckpointer().restore(best / "state")) == {"params", "batch_stats"}
    model_bytes = sum(np.asarray(leaf).nbytes
                      for leaf in jax.tree.leaves(transfer.load_variables(workdir)))
    assert folder_bytes(workdir) < 1.2 * model_bytes  # was 6x: 2 latest + best, with momentum
    assert saved["versions"] == {name: importlib.metadata.version(name) for name in (
        "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain", "numpy", "scipy",
        "scikit-learn", "pillow")}
    assert saved["versions"]["jax"] == jax.__version__
    assert saved["platform"]["python"] == platform.python_version()
    assert saved["platform"]["jax_backend"] == jax.default_backend()
    best_val = max(r["kappa"] for r in records if r["split"] == "val")
    assert saved["val"]["kappa"] == pytest.approx(best_val)  # final eval uses the best epoch


def test_the_report_of_a_finished_run_shows_its_figures(finished_run):
    tmp, _, results = finished_run
    paths = report.render_run(tmp / "workdir", tmp / "run_report")
    drawn = [alt for alt, _ in html_figures(paths["html"].read_text())]
    assert drawn == ["learning_curves.png", "confusion.png", "roc_pr.png", "reliability.png"]
    kappa, (low, high) = results["test"]["kappa"], results["test"]["kappa_ci"]
    assert f"| test | {kappa:.3f} [{low:.3f}, {high:.3f}] |" in paths["markdown"].read_text()


# Resuming after an interruption: real processes killed with kill -9 and SIGTERM resume
# bitwise into the uninterrupted run (tests/core/test_preemption.py).


def test_a_finished_run_is_not_trained_again(finished_run):
    tmp, _, _ = finished_run
    workdir = tmp / "workdir"
    log = (workdir / rundir.METRICS_FILE).read_text()
    again = train.train_and_evaluate(tiny_config(tmp), workdir)
    assert again == json.loads((workdir / rundir.RESULTS_FILE).read_text())
    assert (workdir / rundir.METRICS_FILE).read_text() == log
    assert not (workdir / rundir.LATEST_DIR).exists()


def test_evaluate_and_features_work_on_a_finished_run(finished_run, tmp_path):
    """A finished run keeps only best/: `jaxtl.commands.evaluate` scores it as the run did,
    and `jaxtl.commands.features` takes its backbone (`model.init`)."""
    tmp, _, results = finished_run
    workdir = tmp / "workdir"
    scored = evaluate.evaluate_checkpoint(tiny_config(tmp), workdir, tmp_path / "evaluated")
    for split in ("val", "test"):
        for metric in ("kappa", "accuracy", "loss"):
            assert scored[split][metric] == pytest.approx(results[split][metric], rel=1e-6)
    assert scored["versions"] == results["versions"]

    config = tiny_config(tmp, overrides={"model.init": str(workdir), "probe.c_values": (1.0,)})
    probed = features.extract_and_probe(config, tmp_path / "features")
    assert probed["probe"]["backbone"] == str(workdir) and "versions" in probed
    module, variables = transfer.load(workdir)
    transform = image_transform(config, augment=False)
    records = loading.load_splits(config).val
    with np.load(tmp_path / "features" / rundir.FEATURES_DIR / "val.npz") as saved:
        for index in (0, len(records) - 1):
            image = EvalExample(transform)((records[index], index))["image"]
            _, out = module.apply(variables, transform.normalisation(image[None]), train=False)
            np.testing.assert_allclose(saved["features"][index], np.asarray(out["pre_logits"])[0],
                                       rtol=1e-4, atol=1e-5)


def test_changed_config_on_existing_workdir_is_refused(finished_run):
    tmp, _, _ = finished_run
    config = tiny_config(tmp)
    config.optim.lr = 0.5
    with pytest.raises(WorkdirConflict, match=r"optim.lr: 0.01 -> 0.5"):
        train.train_and_evaluate(config, tmp / "workdir")


def test_init_from_a_run_keeps_backbone_and_reinitialises_head(finished_run):
    tmp, _, _ = finished_run
    from jaxtl import models

    model = models.create_model("small_cnn", num_outputs=5, head="mlp_128")  # the run's arch
    fresh = model.init(jax.random.PRNGKey(1), np.zeros((1, 32, 32, 3), np.float32), train=False)
    merged = transfer.load_into(tmp / "workdir", fresh)
    saved = transfer.load_variables(tmp / "workdir")
    np.testing.assert_array_equal(merged["params"]["backbone"]["block1_conv"]["kernel"],
                                  saved["params"]["backbone"]["block1_conv"]["kernel"])
    np.testing.assert_array_equal(merged["batch_stats"]["backbone"]["block1_bn"]["mean"],
                                  saved["batch_stats"]["backbone"]["block1_bn"]["mean"])
    np.testing.assert_array_equal(merged["params"]["head"]["hidden_0"]["kernel"],
                                  fresh["params"]["head"]["hidden_0"]["kernel"])


def test_init_from_a_different_architecture_lists_the_mismatch(finished_run):
    tmp, _, _ = finished_run
    from jaxtl import models

    model = models.create_model("resnet18", num_outputs=5)  # the run trained small_cnn
    fresh = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(1),
                                              np.zeros((1, 32, 32, 3), np.float32), train=False))
    fresh = jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), fresh)
    with pytest.raises(TransferError, match=r"missing \(\d+\): .*params/backbone/conv1/kernel"
                                            r".*; unexpected \(\d+\): params/backbone/block1_bn"):
        transfer.load_into(tmp / "workdir", fresh)


def test_configured_root_that_is_malformed_never_falls_back_to_demo(tmp_path):
    root = write_eyepacs(tmp_path / "eyepacs", eyepacs_labels(5))
    (root / "trainLabels.csv").write_text("id,grade\n")
    config = tiny_config(tmp_path, overrides={"data.root": str(root)})
    with pytest.raises(DataError, match="expected the header 'image,level'"):
        train.train_and_evaluate(config, tmp_path / "workdir")
    assert not (tmp_path / "cache").exists()


def test_a_run_can_start_from_another_runs_checkpoint(finished_run, tmp_path):
    tmp, _, _ = finished_run
    config = tiny_config(tmp_path)
    config.data.cache_dir = finished_run[1].data.cache_dir
    config.model.init = str(tmp / "workdir")
    config.model.head = "mlp_128"  # a new head; the backbone comes from the first run
    config.demo.epochs = 1
    results = train.train_and_evaluate(config, tmp_path / "second")
    assert results["config"]["model"]["init"] == str(tmp / "workdir")
    assert results["val"]["count"] == results["split_sizes"]["val"]
