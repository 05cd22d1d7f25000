"""A tiny CoNSeP segmentation run end to end: a UNet whose encoder starts from a converted
checkpoint and stays frozen trains on crops, whole tiles are scored, and the saved masks give
the pooled Dice and the per-tile mean Dice (HoVer-Net's) that results.json reports."""

from __future__ import annotations

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_config
from html_pages import html_figures

from jaxtl import models, report
from jaxtl.data import loading, registry
from jaxtl.engine import transfer
from jaxtl.metrics import segmentation as seg
from jaxtl.training import loop as train
from jaxtl.workdir import files as rundir
from jaxtl.workdir import pretrained

pytestmark = pytest.mark.slow

ENCODER_ARCHS = ("test_vit", "test_convnext")


@pytest.fixture(scope="module")
def segmentation_runs(tmp_path_factory) -> tuple[pathlib.Path, dict]:
    """The module's three runs on one CoNSeP demo dataset, trained in this process: the
    frozen encoder from a converted checkpoint ("frozen") and each of ENCODER_ARCHS from random
    weights. Returns their folder and the checkpoint's variables."""
    root = tmp_path_factory.mktemp("segmentation")
    checkpoint, start = pretrained_small_cnn(root / "ckpt")
    runs = {"frozen": {"finetune.strategy": "linear_probe", "model.init": str(checkpoint)},
            **{arch: {"model.arch": arch, "demo.arch": arch, "consep_seg.crops_per_tile": 8,
                      "train.log_every_steps": 1} for arch in ENCODER_ARCHS}}
    for name, overrides in runs.items():
        train.train_and_evaluate(tiny_config(root, "consep_seg", overrides), root / name)
    return root, start


def pretrained_small_cnn(folder):
    """A converted-checkpoint folder of a small_cnn classifier, its variables drawn with NumPy."""
    model = models.create_model("small_cnn", num_outputs=7)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)),
                                                train=False))
    rng = np.random.default_rng(0)

    def draw(path, leaf):  # He-normal kernels; the rest near 1 (valid BatchNorm variances)
        if jax.tree_util.keystr(path).endswith("['kernel']"):
            std = np.sqrt(2.0 / np.prod(leaf.shape[:-1]))
            return rng.normal(0.0, std, leaf.shape).astype(np.float32)
        return (1.0 + 0.1 * np.abs(rng.normal(size=leaf.shape))).astype(np.float32)

    variables = jax.tree_util.tree_map_with_path(draw, shapes)
    info = pretrained.PretrainedInfo(arch="small_cnn", num_classes=7, in_channels=3,
                                     resolution=32, mean=(0.5,) * 3, std=(0.25,) * 3,
                                     source={"kind": "test"})
    return pretrained.save_pretrained(folder, info, variables), variables


def test_tiny_segmentation_run_from_a_checkpoint_with_a_frozen_encoder(tmp_path,
                                                                        segmentation_runs):
    root, start = segmentation_runs
    workdir = root / "frozen"
    results = rundir.read_results(workdir)

    assert results["task"]["kind"] == "segmentation"
    assert results["task"]["names"][0] == "background"
    test = results["test"]
    assert test["count"] == results["split_sizes"]["test"] == 3  # the demo's Test/ tiles
    for key in ("dice_nuclei", "dice_nuclei_tile_mean", "iou_nuclei", "aji", "pq", "dq", "sq"):
        assert test[key] is None or 0.0 <= test[key] <= 1.0
    low, high = test["dice_nuclei_ci"]
    assert low <= test["dice_nuclei"] <= high
    assert results["val"]["count"] == 1

    # The saved masks, scored again here, give the pooled nuclei Dice of results.json and,
    # each tile's Dice of the nuclei of its instance map averaged, HoVer-Net's.
    with np.load(rundir.segmentation_file(workdir, "test")) as saved:
        masks = dict(saved)
    run_config = rundir.read_config(workdir)
    read_tile = registry.get("consep_seg").segmentation.tile
    counts, tile_dice = np.zeros(3), []
    for record in loading.load_splits(run_config).test:
        _, classes, instances = read_tile(run_config, record)
        predicted = masks[record.image_id]
        assert predicted.shape == classes.shape
        counts += seg.pixel_counts(classes > 0, predicted > 0, 2)[1]
        true_nuclei, predicted_nuclei = instances > 0, predicted > 0
        tile_dice.append(2 * np.sum(true_nuclei & predicted_nuclei)
                         / (np.sum(true_nuclei) + np.sum(predicted_nuclei)))
    assert test["dice_nuclei"] == pytest.approx(2 * counts[0] / (2 * counts[0] + counts[1]
                                                                 + counts[2]))
    assert test["dice_nuclei_tile_mean"] == pytest.approx(np.mean(tile_dice))
    assert len(rundir.segmentation_overlays(workdir, "test")) == 3
    # the run's report: its learning curves and the overlays (titled and keyed)
    paths = report.render_run(workdir, tmp_path / "report")
    assert [alt for alt, _ in html_figures(paths["html"].read_text())] == [
        "learning_curves.png", "masks.png"]
    assert f"{test['dice_nuclei']:.3f} [{low:.3f}, {high:.3f}] |" in paths["markdown"].read_text()

    # The encoder came from the checkpoint and stayed frozen; the decoder trained.
    best = transfer.load_variables(workdir)
    for collection in ("params", "batch_stats"):
        for path, value in jax.tree_util.tree_leaves_with_path(start[collection]["backbone"]):
            np.testing.assert_array_equal(value, _at(best[collection]["backbone"], path),
                                          err_msg=jax.tree_util.keystr(path))
    fresh_head = best["params"]["head"]["logits"]["kernel"]
    assert fresh_head.shape[-1] == len(results["task"]["names"])
    assert np.abs(fresh_head).sum() > 0


def _at(tree, path):
    for key in path:
        tree = tree[key.key]
    return tree


@pytest.mark.parametrize("arch", ENCODER_ARCHS)
def test_vit_and_convnext_encoders_train_and_learn_a_little(segmentation_runs, arch):
    """configs/consep_seg.py with model.arch test_vit (a pyramid from four blocks) or
    test_convnext (its stage maps), from random weights: six steps on 32 px crops lower the
    training loss, and the whole tiles are scored."""
    workdir = segmentation_runs[0] / arch
    results = rundir.read_results(workdir)
    losses = [row["loss"] for row in map(json.loads, (workdir / "metrics.jsonl")
                                         .read_text().splitlines()) if row["split"] == "train"]
    assert results["steps"] == len(losses) >= 5
    assert losses[-1] < losses[0] - 0.05
    assert results["test"]["count"] == 3 and 0.0 <= results["test"]["dice_nuclei"] <= 1.0
    with np.load(rundir.segmentation_file(workdir, "test")) as saved:
        assert all(mask.shape == (96, 96) for mask in saved.values())  # the demo's tiles
