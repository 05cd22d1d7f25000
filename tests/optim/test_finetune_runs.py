"""Fine-tuning strategies and early stopping in real (tiny) training runs, from the config."""

from __future__ import annotations

import json

import jax
import numpy as np
import optax
import pytest
from conftest import stopped_at_first_checkpoint_then_resumed, tiny_config
from flax import traverse_util

from jaxtl.data import pipeline
from jaxtl.engine import steps
from jaxtl.engine.build import build
from jaxtl.training import loop as train
from jaxtl.workdir import checkpoints as checkpoint
from jaxtl.workdir.checkpoints import abstract_like

pytestmark = pytest.mark.slow


# train.keep_last_checkpoint: the tests read the final train state from the latest checkpoint.
# No bootstrap intervals: they rescore the test split with scikit-learn and no test reads them.
SMALL_CNN = {"demo.arch": "small_cnn", "model.arch": "small_cnn", "demo.bootstrap_samples": 0,
             "train.keep_last_checkpoint": True}


def initial_and_final(config, workdir):
    """The run as built from the config (its fine-tuning plan: `run.plan`), the variables it
    starts from (rebuilt from its seed) and those of its latest checkpoint."""
    run, initial = build(config)
    latest = checkpoint.RunCheckpoints(workdir, keep=2, best_metric=config.eval.best_metric)
    iterator = run.stream.iterator()
    final, _ = latest.restore_latest(abstract_like(initial), iterator)
    pipeline.close(iterator)
    latest.close()
    return run, initial, final


def by_stage(state, plan):
    """{stage: {collection/path: bytes}} of the backbone variables."""
    out: dict[str, dict[str, bytes]] = {}
    for collection in ("params", "batch_stats"):
        for path, value in traverse_util.flatten_dict(getattr(state, collection)).items():
            if path[0] == "backbone":
                out.setdefault(plan.label(path), {})["/".join((collection, *path))] = (
                    np.asarray(value).tobytes())
    return out


def test_early_stopping_with_a_linear_probe_keeps_the_backbone_bit_for_bit(tmp_path):
    # kappa cannot rise by more than 2, so the run stops `patience` epochs after the first
    config = tiny_config(tmp_path, overrides={
        **SMALL_CNN, "demo.epochs": 4, "optim.name": "adam", "optim.lr": 0.01,
        "optim.schedule": "one_cycle", "optim.clip_grad_norm": 1.0,
        "finetune.strategy": "linear_probe", "train.early_stopping_patience": 1,
        "train.early_stopping_min_delta": 2.0, "train.label_smoothing": 0.2})
    workdir = tmp_path / "probe"
    results = train.train_and_evaluate(config, workdir)
    assert results["stopped_epoch"] == 2 and results["epochs_trained"] == 2
    assert results["epochs"] == 4 and results["best_epoch"] in (1, 2)
    saved = json.loads((workdir / "results.json").read_text())
    assert saved["stopped_epoch"] == 2 and saved["epochs_trained"] == 2
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["split"] == "val"] == [1, 2]

    run, initial, final = initial_and_final(config, workdir)
    plan = run.plan
    assert int(final.step) == 2 * results["steps"] // 4
    before, after = by_stage(initial, plan), by_stage(final, plan)
    assert before == after and len(before) == 4  # all four blocks, params and statistics
    head_before = np.asarray(initial.params["head"]["fc"]["kernel"])
    assert not np.array_equal(head_before, np.asarray(final.params["head"]["fc"]["kernel"]))

    # the first step's loss: label-smoothed cross-entropy of the backbone in inference mode
    iterator = run.stream.iterator()
    batch = next(iterator)
    pipeline.close(iterator)
    # the batch as the train step takes it: canvases warped (crop, flip, rotation), normalised
    images = steps.normalised(batch, run.eval_transform.normalisation)
    logits, _ = run.model.apply({"params": initial.params, "batch_stats": initial.batch_stats},
                                images, train=False)
    targets = optax.smooth_labels(jax.nn.one_hot(batch["label"], 5), 0.2)
    first_loss = float(optax.softmax_cross_entropy(logits, targets).mean())
    assert next(r["loss"] for r in records if r["split"] == "train") == pytest.approx(
        first_loss, rel=1e-5)

    # the same command again: the run is over, nothing is trained any more
    again = train.train_and_evaluate(config, workdir)
    assert again["stopped_epoch"] == 2 and again["val"] == results["val"]


def test_gradual_unfreezing_trains_stages_from_their_epoch_and_resumes_exactly(
        tmp_path, monkeypatch):
    config = tiny_config(tmp_path, overrides={
        **SMALL_CNN, "demo.epochs": 2, "optim.name": "cool_momentum", "optim.lr": 0.001,
        "optim.schedule": "sudden", "optim.decay_epochs": (1.5,),
        "finetune.strategy": "gradual_unfreeze", "finetune.unfreeze_epochs": (1,),
        "finetune.stage_lr_multipliers": (1.0, 1.0, 1.0, 0.5)})
    results = train.train_and_evaluate(config, tmp_path / "whole")
    run, initial, final = initial_and_final(config, tmp_path / "whole")
    plan = run.plan
    before, after = by_stage(initial, plan), by_stage(final, plan)
    for stage in ("block1", "block2", "block3"):
        assert before[stage] == after[stage]
    # block4, unfrozen after epoch 1: its parameters and BatchNorm statistics moved
    changed = [k for k in before["block4"] if before["block4"][k] != after["block4"][k]]
    assert {k.split("/")[0] for k in changed} == {"params", "batch_stats"}

    # interrupted at the end of the first epoch (the frozen phase), then the same command
    resumed = stopped_at_first_checkpoint_then_resumed(config, tmp_path / "resumed",
                                                       monkeypatch)

    def losses(workdir):
        return [r["loss"] for r in map(json.loads, (workdir / "metrics.jsonl").read_text()
                                       .splitlines()) if r["split"] == "train"]

    assert len(losses(tmp_path / "resumed")) == results["steps"]
    np.testing.assert_allclose(losses(tmp_path / "resumed"), losses(tmp_path / "whole"),
                               rtol=1e-5)
    assert resumed["val"]["kappa"] == pytest.approx(results["val"]["kappa"], abs=1e-6)
