"""A tiny CoNSeP segmentation run end to end: crops train a UNet whose encoder is frozen, whole
tiles are scored, and the saved masks give the Dice that results.json reports."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from conftest import tiny_config
from jaxtl import configuration, demo, rundir, train, transfer
from jaxtl.data import loading, registry
from jaxtl.metrics import segmentation as seg
from jaxtl.run import build

pytestmark = pytest.mark.slow


def test_tiny_segmentation_run_with_a_frozen_encoder(tmp_path):
    config = tiny_config(tmp_path, "consep_seg", {"finetune.strategy": "freeze_stages",
                                                  "finetune.freeze_stages": 5})
    workdir = tmp_path / "run"
    results = train.train_and_evaluate(config, workdir)

    assert results["task"]["kind"] == "segmentation"
    assert results["task"]["names"][0] == "background"
    test = results["test"]
    assert test["count"] == results["split_sizes"]["test"] == 3  # the demo's Test/ tiles
    for key in ("dice_nuclei", "iou_nuclei", "aji", "pq", "dq", "sq"):
        assert test[key] is None or 0.0 <= test[key] <= 1.0
    low, high = test["dice_nuclei_ci"]
    assert low <= test["dice_nuclei"] <= high
    assert results["val"]["count"] == 1

    # The saved masks, scored again here, give the pooled nuclei Dice of results.json.
    with np.load(rundir.segmentation_file(workdir, "test")) as saved:
        masks = dict(saved)
    run_config = rundir.read_config(workdir)
    splits_spec = registry.get("consep_seg").segmentation
    counts = np.zeros(3)
    for record in loading.load_splits(run_config).test:
        _, classes, _ = splits_spec.tile(run_config, record)
        predicted = masks[record.image_id]
        assert predicted.shape == classes.shape
        counts += seg.pixel_counts(classes > 0, predicted > 0, 2)[1]
    assert test["dice_nuclei"] == pytest.approx(2 * counts[0] / (2 * counts[0] + counts[1]
                                                                 + counts[2]))
    assert len(rundir.segmentation_overlays(workdir, "test")) == 3

    # Frozen encoder: the best checkpoint's backbone is the initial one, the decoder trained.
    demo.apply(config)
    configuration.validate(config)
    _, initial = build(config)
    best = transfer.load_variables(workdir)
    start = jax.device_get(initial.params)
    for path, value in jax.tree_util.tree_leaves_with_path(start["backbone"]):
        np.testing.assert_array_equal(
            value, _at(best["params"]["backbone"], path), err_msg=jax.tree_util.keystr(path))
    assert not np.array_equal(start["head"]["logits"]["kernel"],
                              best["params"]["head"]["logits"]["kernel"])


def _at(tree, path):
    for key in path:
        tree = tree[key.key]
    return tree
