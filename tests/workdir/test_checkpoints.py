"""The best checkpoint keeps the model's variables only; a finished run's latest checkpoints
are removed whole; a LoRA run's checkpoints keep what it trains and the hash of its base."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxtl.core.errors import TransferError
from jaxtl.engine import transfer
from jaxtl.engine.steps import TrainState
from jaxtl.workdir import checkpoints
from jaxtl.workdir import files as rundir


def state_of(value: float) -> TrainState:
    return TrainState(step=jnp.asarray(3), params={"w": jnp.full((4,), value)},
                      batch_stats={"mean": jnp.full((2,), value / 2)},
                      opt_state={"momentum": jnp.full((4,), 10 * value)},
                      rng=jnp.zeros((2,), jnp.uint32))


def meta(kappa: float) -> dict:
    return {"epoch": 1, "step": 3, "val": {"kappa": kappa}}


def test_the_best_checkpoint_keeps_params_and_batch_stats_and_restores_into_a_state(tmp_path):
    saver = checkpoints.RunCheckpoints(tmp_path, keep=2, best_metric="kappa")
    assert saver.save_if_best(3, state_of(1.0), meta(0.5))
    assert not saver.save_if_best(6, state_of(2.0), meta(0.4))  # lower: not kept
    saver.wait()
    saver.close()
    [best] = (tmp_path / rundir.BEST_DIR).iterdir()
    assert set(ocp.StandardCheckpointer().restore(best / "state")) == {"params", "batch_stats"}

    reader = checkpoints.RunCheckpoints(tmp_path, keep=2, best_metric="kappa")  # a new process
    restored, saved_meta = reader.restore_best(state_of(7.0))
    reader.close()
    np.testing.assert_array_equal(restored.params["w"], np.full(4, 1.0))
    np.testing.assert_array_equal(restored.batch_stats["mean"], np.full(2, 0.5))
    np.testing.assert_array_equal(restored.opt_state["momentum"], np.full(4, 70.0))  # caller's
    assert saved_meta["val"]["kappa"] == 0.5
    assert set(transfer.load_variables(tmp_path)) == {"params", "batch_stats"}


def test_a_best_checkpoint_with_the_whole_train_state_still_restores(tmp_path):
    """Runs written before the best checkpoint dropped the optimizer state."""
    manager = ocp.CheckpointManager(
        tmp_path / rundir.BEST_DIR, item_names=("state", "meta"),
        options=ocp.CheckpointManagerOptions(max_to_keep=1, create=True,
                                             best_fn=lambda metrics: metrics["kappa"],
                                             best_mode="max"))
    manager.save(3, args=ocp.args.Composite(state=ocp.args.StandardSave(state_of(1.0)),
                                            meta=ocp.args.JsonSave(meta(0.5))),
                 metrics={"kappa": 0.5})
    manager.wait_until_finished()
    manager.close()
    reader = checkpoints.RunCheckpoints(tmp_path, keep=2, best_metric="kappa")
    restored, _ = reader.restore_best(state_of(7.0))
    reader.close()
    np.testing.assert_array_equal(restored.params["w"], np.full(4, 1.0))
    np.testing.assert_array_equal(restored.batch_stats["mean"], np.full(2, 0.5))


def test_remove_latest_removes_the_folder_and_counts_its_bytes(tmp_path):
    assert checkpoints.remove_latest(tmp_path) == 0  # nothing to remove
    for step, size in ((4, 300), (8, 700)):
        folder = tmp_path / rundir.LATEST_DIR / str(step) / "state"
        folder.mkdir(parents=True)
        (folder / "data").write_bytes(b"x" * size)
    (tmp_path / rundir.BEST_DIR / "8").mkdir(parents=True)
    assert checkpoints.folder_bytes(tmp_path / rundir.LATEST_DIR) == 1000
    assert checkpoints.remove_latest(tmp_path) == 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == [rundir.BEST_DIR]  # nothing aside
    assert not rundir.has_checkpoints(tmp_path)


def lora_state(value: float) -> TrainState:
    """A LoRA run's state: a frozen kernel, its adapters and the head."""
    params = {"backbone": {"qkv": {"kernel": jnp.full((4, 6), 100 + value),
                                   "lora_a": jnp.full((4, 2), value),
                                   "lora_b": jnp.full((2, 6), -value)}},
              "head": {"fc": {"bias": jnp.full((3,), 2 * value)}}}
    return TrainState(step=jnp.asarray(3), params=params, batch_stats={},
                      opt_state={"mu": jnp.full((3,), 10 * value)},
                      rng=jnp.zeros((2,), jnp.uint32))


def test_lora_checkpoints_hold_the_adapters_and_head_and_restore_onto_the_frozen_base(tmp_path):
    import grain

    base = {"init": "/weights/vit", "sha256": "ab" * 32}
    iterator = grain.MapDataset.range(8).to_iter_dataset().__iter__()
    saver = checkpoints.RunCheckpoints(tmp_path, keep=2, best_metric="kappa", base=base)
    saver.save_latest(3, lora_state(1.0), iterator, meta(0.5))
    assert saver.save_if_best(3, lora_state(1.0), meta(0.5))
    saver.wait()
    saver.close()
    for folder in (rundir.LATEST_DIR, rundir.BEST_DIR):
        saved = ocp.StandardCheckpointer().restore(tmp_path / folder / "3" / "state")
        assert "kernel" not in saved["params"]["backbone"]["qkv"]
        assert set(saved["params"]["backbone"]["qkv"]) == {"lora_a", "lora_b"}

    reader = checkpoints.RunCheckpoints(tmp_path, keep=2, best_metric="kappa", base=base)
    fresh = lora_state(7.0)  # the new process's state: the base as model.init gives it
    latest, latest_meta = reader.restore_latest(fresh, iterator)
    best, _ = reader.restore_best(fresh)
    reader.close()
    for restored in (latest, best):
        qkv = restored.params["backbone"]["qkv"]
        np.testing.assert_array_equal(qkv["kernel"], np.full((4, 6), 107.0))  # the base's
        np.testing.assert_array_equal(qkv["lora_a"], np.full((4, 2), 1.0))  # the saved
        np.testing.assert_array_equal(restored.params["head"]["fc"]["bias"], np.full(3, 2.0))
    np.testing.assert_array_equal(latest.opt_state["mu"], np.full(3, 10.0))
    assert latest_meta["base"] == base

    changed = checkpoints.RunCheckpoints(tmp_path, keep=2, best_metric="kappa",
                                         base={**base, "sha256": "cd" * 32})
    with pytest.raises(TransferError, match=r"trained with LoRA on model.init=/weights/vit "
                                            r"\(sha256 abababababab\.\.\.\), but those weights "
                                            r"have changed"):
        changed.restore_latest(fresh, iterator)
    changed.close()


def test_saving_leaves_the_preemption_sync_point_to_the_training_loop(tmp_path, monkeypatch):
    """JAX's sync point protocol needs every host's reported step to only rise: Orbax asking
    it from `save` and its finishing thread (with older steps) let two hosts stop at
    different steps, and the first to save waited forever."""
    from jax.experimental import multihost_utils
    asked = []
    monkeypatch.setattr(multihost_utils, "reached_preemption_sync_point",
                        lambda step: asked.append(step) or False)
    import grain
    iterator = iter(grain.MapDataset.range(8).to_iter_dataset())
    saver = checkpoints.RunCheckpoints(tmp_path, keep=2, best_metric="kappa")
    for step in (3, 6):
        assert saver.save_if_best(step, state_of(float(step)), meta(step / 10))
        saver.save_latest(step, state_of(float(step)), iterator, meta(step / 10))
    saver.wait()
    saver.close()
    assert asked == []
    assert sorted(p.name for p in (tmp_path / rundir.LATEST_DIR).iterdir()) == ["3", "6"]
