"""Frozen stages of a real backbone: no gradient, BatchNorm and dropout in inference mode."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from configs import eyepacs
from jaxtl import models, optim
from jaxtl.optim.freezing import Frozen
from jaxtl.optim.stages import stages_of


def small_model(arch="resnet18", dropout=0.0):
    model = models.create_model(arch, num_outputs=3, head="mlp_128", dropout=dropout)
    variables = model.init({"params": jax.random.PRNGKey(0)}, jnp.zeros((1, 32, 32, 3)),
                           train=False)
    images = jax.random.normal(jax.random.PRNGKey(1), (4, 32, 32, 3))
    return model, variables, images


def flat(tree):
    return traverse_util.flatten_dict(tree, sep="/")


def test_all_stages_frozen_is_the_backbone_in_inference_mode():
    model, variables, images = small_model("small_cnn")
    frozen = Frozen(stages_of("small_cnn"))

    @jax.jit
    def train_mode(variables):
        return model.apply(variables, images, train=True, mutable=["batch_stats"])

    @jax.jit
    def frozen_train_mode(variables):
        with frozen.inference_mode():
            return model.apply(variables, images, train=True, mutable=["batch_stats"])

    logits, updates = frozen_train_mode(variables)
    expected = jax.jit(lambda v: model.apply(v, images, train=False))(variables)
    np.testing.assert_array_equal(logits, expected)
    for name, value in flat(updates["batch_stats"]).items():
        np.testing.assert_array_equal(value, flat(variables["batch_stats"])[name], err_msg=name)
    # outside the context the same call trains BatchNorm again
    logits, updates = train_mode(variables)
    assert not np.allclose(logits, expected)


def test_frozen_stage_dropout_is_off_and_unfrozen_dropout_stays_on():
    # VGG16's pre_logits stage holds a dropout; the head has its own
    model = models.create_model("vgg16", num_outputs=3, head="linear", dropout=0.0)
    variables = jax.eval_shape(lambda: model.init({"params": jax.random.PRNGKey(0)},
                                                  jnp.zeros((1, 32, 32, 3)), train=False))
    calls = []

    def record(next_fun, args, kwargs, context):
        if isinstance(context.module, __import__("flax").linen.Dropout):
            calls.append((context.module.path, context.module.deterministic))
        return next_fun(*args, **kwargs)

    import flax.linen as nn

    for frozen, expected in ((Frozen(stages_of("vgg16")), True), (Frozen(), False)):
        calls.clear()
        with frozen.inference_mode(), nn.intercept_methods(record):
            jax.eval_shape(lambda v: model.apply(v, jnp.zeros((2, 32, 32, 3)), train=True,
                                                 rngs={"dropout": jax.random.PRNGKey(0)},
                                                 mutable=["batch_stats"]), variables)
        backbone = [deterministic for path, deterministic in calls if path[0] == "backbone"]
        head = [deterministic for path, deterministic in calls if path[0] == "head"]
        assert backbone == [expected] and head == [False]


def train_steps(arch, finetune, steps=3):
    """A few SGD steps as jaxtl.steps takes them, with the stages the plan freezes."""
    config = eyepacs.get_config()
    config.model.arch = arch
    config.optim.name, config.optim.schedule, config.optim.lr = "sgd", "flat", 0.1
    for key, value in finetune.items():
        config.finetune[key] = value
    opt = optim.make_optimizer(config, steps_per_epoch=2, total_steps=10)
    model, variables, images = small_model(arch)
    labels = jnp.array([0, 1, 2, 1])
    frozen = opt.plan.frozen_at(0)

    @jax.jit
    def step(params, batch_stats, opt_state):
        def loss_fn(p):
            with frozen.inference_mode():
                logits, updates = model.apply(
                    {"params": frozen.stop_gradient(p), "batch_stats": batch_stats}, images,
                    train=True, mutable=["batch_stats"])
            loss = -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(4), labels])
            return loss, updates["batch_stats"]

        (_, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = opt.tx.update(grads, opt_state, params)
        return jax.tree.map(jnp.add, params, updates), batch_stats, opt_state

    params, batch_stats = variables["params"], variables["batch_stats"]
    opt_state = opt.tx.init(params)
    for _ in range(steps):
        params, batch_stats, opt_state = step(params, batch_stats, opt_state)
    return frozen, variables, {"params": params, "batch_stats": batch_stats}


@pytest.mark.parametrize("arch, finetune, frozen_prefixes", [
    ("resnet18", {"strategy": "freeze_stages", "freeze_stages": 2},
     ("backbone/conv1/", "backbone/bn1/", "backbone/layer1_")),
    ("small_cnn", {"strategy": "linear_probe"}, ("backbone/",)),
])
def test_frozen_parameters_and_statistics_are_bit_identical_after_training(
        arch, finetune, frozen_prefixes):
    frozen, before, after = train_steps(arch, finetune)
    checked = {True: 0, False: 0}
    for collection in ("params", "batch_stats"):
        old, new = flat(before[collection]), flat(after[collection])
        for name, value in old.items():
            is_frozen = f"{collection}/{name}".startswith(
                tuple(f"{collection}/{prefix}" for prefix in frozen_prefixes))
            assert frozen.contains(tuple(name.split("/"))) == is_frozen, name
            if is_frozen:
                assert np.asarray(new[name]).tobytes() == np.asarray(value).tobytes(), name
            checked[is_frozen] += 1
        moved = [name for name in old if not frozen.contains(tuple(name.split("/")))
                 and not np.array_equal(new[name], old[name])]
        # everything trainable moved (a zero-initialised last BN scale may not in 3 steps)
        assert len(moved) >= 0.8 * sum(not frozen.contains(tuple(n.split("/"))) for n in old)
    assert checked[True] > 0 and checked[False] > 0
