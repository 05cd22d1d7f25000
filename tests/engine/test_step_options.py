"""The train step's fine-tuning options (issue 27): gradient accumulation, the parameters'
moving average (EMA) and rematerialised blocks, each checked against what it must equal."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxtl import models
from jaxtl.core import tasks
from jaxtl.engine import steps

RESOLUTION = 32  # test_vit: 2 x 2 patches of 16 px


def vit_state(tx, *, ema: bool = False, remat: bool = False, batch_stats: bool = False):
    model = models.create_model("small_cnn" if batch_stats else "test_vit", num_outputs=3,
                                remat=remat)
    mesh = steps.make_mesh(jax.devices()[:1])
    variables = steps.init_variables(model, seed=3, image_shape=(RESOLUTION, RESOLUTION, 3),
                                     mesh=mesh)
    return model, mesh, steps.new_state(tx, variables, seed=3, mesh=mesh, ema=ema)


def batch_of(size: int, *, seed: int = 0, multilabel: bool = False) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.integers(-1, 2, (size, 3)) if multilabel else rng.integers(0, 3, size))
    valid = np.ones(size, bool)
    valid[1] = False  # a skipped image's stand-in counts for nothing
    return {"image": rng.normal(size=(size, RESOLUTION, RESOLUTION, 3)).astype(np.float32),
            "label": labels.astype(np.int32), "valid": valid}


def test_accumulated_micro_batches_give_the_whole_batchs_update():
    # Multi-label with masked entries, a skipped image and positive weights: each micro-batch
    # counts a different number of entries, so only adding up the sums and counts is exact.
    task = tasks.multilabel(["a", "b", "c"])
    tx = optax.sgd(0.5)
    batch = batch_of(8, multilabel=True)
    assert len({int((batch["label"][j::4] >= 0).sum()) for j in range(4)}) > 1
    results = {}
    for k in (1, 4):
        model, mesh, state = vit_state(tx)
        before = jax.tree.map(np.asarray, state.params)
        step = steps.make_train_step(model, tx, mesh, task=task, accumulation_steps=k,
                                     loss_weights=(1.0, 2.0, 0.5))
        state, metrics = step(state, batch)
        results[k] = (before, jax.tree.map(np.asarray, state.params),
                      jax.device_get(metrics))
    (start, whole, one), (_, accumulated, four) = results[1], results[4]
    for a, b, s in zip(jax.tree.leaves(whole), jax.tree.leaves(accumulated),
                       jax.tree.leaves(start)):
        # the update itself; float32 sums in another order (as XLA fuses them) differ by a few
        # parts in 10^5 of the largest update (a mean of the micro-batches' means would be off
        # by 10% or more)
        np.testing.assert_allclose(b - s, a - s, rtol=2e-4, atol=1e-4 * np.abs(a - s).max())
    assert four["loss"] == pytest.approx(float(one["loss"]), rel=1e-5)
    assert four["grad_norm"] == pytest.approx(float(one["grad_norm"]), rel=1e-4)
    assert float(one["grad_norm"]) > 0 and int(four["skipped_images"]) == 1
    # the mean of the micro-batches' mean losses is not the batch's loss: a real difference
    means = [tasks.multilabel(["a", "b", "c"]).mean_loss(
        jnp.zeros((2, 3)), jnp.asarray(batch["label"][j::4]), 0.0, (1.0, 2.0, 0.5),
        jnp.asarray(batch["valid"][j::4])) for j in range(4)]
    assert np.mean(means) != pytest.approx(float(task.mean_loss(
        jnp.zeros((8, 3)), jnp.asarray(batch["label"]), 0.0, (1.0, 2.0, 0.5),
        jnp.asarray(batch["valid"]))), rel=1e-3)


def test_micro_batches_and_whole_batch_are_inverse():
    x = jnp.arange(24).reshape(12, 2)
    mesh = steps.make_mesh(jax.devices()[:1])
    micro = steps.micro_batches({"x": x}, 3, mesh)["x"]
    assert micro.shape == (3, 4, 2)
    np.testing.assert_array_equal(micro[1], x[1::3])  # micro-batch j: rows j, j + k, ...
    np.testing.assert_array_equal(steps.whole_batch(micro), x)


def test_ema_follows_the_recurrence_over_steps():
    decay = 0.9
    tx = optax.sgd(0.3, momentum=0.5)
    model, mesh, state = vit_state(tx, ema=True, batch_stats=True)
    assert steps.has_ema(state)
    step = steps.make_train_step(model, tx, mesh, task=tasks.multiclass(["a", "b", "c"]),
                                 ema_decay=decay)
    expected = jax.tree.map(lambda p: np.asarray(p, np.float64), state.params)
    for i in range(4):
        state, _ = step(state, batch_of(4, seed=i))
        params = jax.tree.map(lambda p: np.asarray(p, np.float64), state.params)
        expected = jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, expected, params)
        for e, got, raw in zip(jax.tree.leaves(expected), jax.tree.leaves(state.ema_params),
                               jax.tree.leaves(state.params)):
            np.testing.assert_allclose(np.asarray(got), e, rtol=1e-5, atol=1e-6)
    moved = [not np.allclose(np.asarray(a), np.asarray(b)) for a, b in
             zip(jax.tree.leaves(state.ema_params), jax.tree.leaves(state.params))]
    assert any(moved)  # the average lags the raw weights
    view = steps.ema_weights(state)
    assert view.params is state.ema_params and view.batch_stats is state.batch_stats


def test_without_ema_the_state_is_the_plain_train_state():
    tx = optax.sgd(0.1)
    _, _, plain = vit_state(tx)
    _, _, averaged = vit_state(tx, ema=True)
    assert type(plain) is steps.TrainState and not steps.has_ema(plain)
    assert jax.tree.structure(averaged.params) == jax.tree.structure(averaged.ema_params)
    for p, e in zip(jax.tree.leaves(averaged.params), jax.tree.leaves(averaged.ema_params)):
        np.testing.assert_array_equal(p, e)  # the average starts at the weights
    abstract = steps.new_state(tx, steps.init_variables(
        models.create_model("test_vit", num_outputs=3), seed=3,
        image_shape=(RESOLUTION, RESOLUTION, 3), mesh=steps.make_mesh(jax.devices()[:1]),
        abstract=True), seed=3, mesh=steps.make_mesh(jax.devices()[:1]), ema=True)
    assert jax.tree.structure(abstract) == jax.tree.structure(averaged)


def test_remat_gives_the_same_outputs_and_gradients():
    plain = models.create_model("test_vit", num_outputs=3)
    remat = models.create_model("test_vit", num_outputs=3, remat=True)
    images = jnp.asarray(batch_of(2)["image"])
    variables = plain.init(jax.random.PRNGKey(0), images, train=False)
    assert (jax.tree.structure(remat.init(jax.random.PRNGKey(0), images, train=False))
            == jax.tree.structure(variables))

    def loss(model, params):
        logits, _ = model.apply({"params": params}, images, train=True,
                                rngs={"dropout": jax.random.PRNGKey(1)})
        return jnp.sum(logits ** 2), logits

    (_, logits), grads = jax.jit(jax.value_and_grad(
        lambda p: loss(plain, p), has_aux=True))(variables["params"])
    (_, logits_r), grads_r = jax.jit(jax.value_and_grad(
        lambda p: loss(remat, p), has_aux=True))(variables["params"])
    np.testing.assert_allclose(logits_r, logits, rtol=1e-6, atol=1e-6)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_r)):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5 * float(np.abs(a).max()))


def test_remat_keeps_less_for_the_backward_pass():
    """What the backward pass keeps from the forward pass (the VJP's residuals), by shapes
    only: the blocks' activations without remat, only their inputs with it. (XLA:CPU's
    compiled `memory_analysis` does not show the saving: its scheduler runs the recomputed
    forward passes early, so this counts what rematerialisation controls.)"""
    images = jnp.zeros((8, 64, 64, 3))
    kept = {}
    for remat in (False, True):
        model = models.create_model("test_vit", num_outputs=3, remat=remat)
        params = jax.eval_shape(functools.partial(model.init, jax.random.PRNGKey(0),
                                                  images[:1], train=False))["params"]

        def loss(p, model=model):
            return jnp.sum(model.apply({"params": p}, images, train=True)[0])

        residuals = jax.eval_shape(lambda p: jax.tree.leaves(jax.vjp(loss, p)[1]), params)
        kept[remat] = sum(r.size * r.dtype.itemsize for r in residuals)
    block_input = 8 * 17 * 64 * 4  # (images, tokens, width) float32
    assert kept[False] - kept[True] > 20 * block_input  # six blocks' activations and more
    assert kept[True] < 0.5 * kept[False]


@pytest.mark.parametrize(("overrides", "message"), [
    ({"eval.select": "ema"}, "train.ema_decay is 0"),
    ({"train.accumulation_steps": 3}, "multiple of train.accumulation_steps=3"),
    ({"model.remat": True}, "small_cnn has no rematerialised blocks"),
    ({"train.ema_decay": 1.0}, "1 excluded"),
])
def test_options_that_cannot_run_are_refused_with_the_config(tmp_path, overrides, message):
    from conftest import tiny_config

    from jaxtl.config import validation
    from jaxtl.core.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        validation.validate(tiny_config(tmp_path, overrides=overrides))
    validation.validate(tiny_config(tmp_path, overrides={
        "model.arch": "test_vit", "model.remat": True, "train.ema_decay": 0.5,
        "eval.select": "ema", "train.accumulation_steps": 4}))


def test_a_batch_that_does_not_split_over_the_devices_is_refused(tmp_path):
    from conftest import tiny_config

    from jaxtl.core.errors import ConfigError
    from jaxtl.engine.build import check_accumulation

    config = tiny_config(tmp_path, overrides={"train.accumulation_steps": 4})  # batch 8
    check_accumulation(config, devices=2)
    with pytest.raises(ConfigError, match="4 x 4"):
        check_accumulation(config, devices=4)
