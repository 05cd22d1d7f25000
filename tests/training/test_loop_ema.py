"""End to end with the parameters' moving average on (train.ema_decay, eval.select=ema): the
validation log holds both weights' metrics and the best checkpoint keeps the selected (EMA)
weights. A run with the average and gradient accumulation on, killed (kill -9, SIGTERM) and
resumed, is bitwise the run that was not: tests/core/test_preemption.py; accumulated
micro-batches give the whole batch's update: tests/engine/test_step_options.py. (Accumulation
is left out here: its scanned step runs slowly at the tests' cheapest compile effort, 61 s
against 22 s for this test.)"""

from __future__ import annotations

import json

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import tiny_config

from jaxtl.core.errors import ConfigError
from jaxtl.training import loop as train
from jaxtl.workdir import files as rundir

pytestmark = pytest.mark.slow

OPTIONS = {"train.ema_decay": 0.8, "eval.select": "ema",
           "train.keep_last_checkpoint": True,
           "train.keep_checkpoints": 100}  # every epoch's checkpoint kept: best/ is compared


def read_metrics(workdir):
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_ema_scores_both_weights_and_selects_the_average(tmp_path):
    config = tiny_config(tmp_path, overrides=OPTIONS)
    whole = train.train_and_evaluate(config, tmp_path / "whole")

    val = [r for r in read_metrics(tmp_path / "whole") if r["split"] == "val"]
    assert all({"kappa", "loss", "ema_kappa", "ema_loss"} <= set(r) for r in val)
    assert any(r["ema_loss"] != r["loss"] for r in val)  # two different models scored
    # eval.select=ema: the best epoch is the EMA's, and the final val is the EMA's score there
    best = max(val, key=lambda r: r["ema_kappa"])
    assert whole["best_epoch"] == best["epoch"]
    assert whole["val"]["loss"] == pytest.approx(best["ema_loss"], rel=1e-5)

    # best/ keeps the average as its params; the latest checkpoint has both
    workdir = tmp_path / "whole"
    [best_dir] = (workdir / rundir.BEST_DIR).iterdir()
    kept = ocp.StandardCheckpointer().restore(best_dir / "state")
    assert set(kept) == {"params", "batch_stats"}
    at_best = workdir / rundir.LATEST_DIR / best_dir.name / "state"
    latest = ocp.StandardCheckpointer().restore(at_best)
    assert {"params", "ema_params", "batch_stats", "opt_state"} <= set(latest)
    for saved, average, raw in zip(jax.tree.leaves(kept["params"]),
                                   jax.tree.leaves(latest["ema_params"]),
                                   jax.tree.leaves(latest["params"])):
        np.testing.assert_array_equal(saved, average)
    assert any(not np.array_equal(a, r) for a, r in zip(
        jax.tree.leaves(latest["ema_params"]), jax.tree.leaves(latest["params"])))


def test_select_ema_without_an_average_is_refused_before_a_run_folder(tmp_path):
    config = tiny_config(tmp_path, overrides={"eval.select": "ema"})
    with pytest.raises(ConfigError, match="train.ema_decay"):
        train.train_and_evaluate(config, tmp_path / "workdir")
    assert not (tmp_path / "workdir").exists()
