"""Frozen stages of a real backbone: no gradient, BatchNorm and dropout in inference mode."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import config_of
from flax import traverse_util

from jaxtl import models, optim
from jaxtl.core import tasks
from jaxtl.data import pipeline
from jaxtl.engine import steps
from jaxtl.models import stages_of
from jaxtl.optim.freezing import Frozen


def flat(tree):
    return traverse_util.flatten_dict(tree, sep="/")


def test_all_stages_frozen_is_the_backbone_in_inference_mode():
    model = models.create_model("small_cnn", num_outputs=3, head="mlp_128")
    frozen = Frozen(stages_of("small_cnn"))

    @jax.jit  # one compilation for all four (op-by-op dispatch is slow on a busy CPU)
    def outputs():
        variables = model.init({"params": jax.random.PRNGKey(0)}, jnp.zeros((1, 32, 32, 3)),
                               train=False)
        images = jax.random.normal(jax.random.PRNGKey(1), (4, 32, 32, 3))
        with frozen.inference_mode():
            frozen_out = model.apply(variables, images, train=True, mutable=["batch_stats"])
        # outside the context the same call trains BatchNorm again
        train_out = model.apply(variables, images, train=True, mutable=["batch_stats"])
        return variables, frozen_out, model.apply(variables, images, train=False), train_out

    variables, ((logits, _), updates), (expected, _), ((train_logits, _), _) = outputs()
    np.testing.assert_array_equal(logits, expected)
    for name, value in flat(updates["batch_stats"]).items():
        np.testing.assert_array_equal(value, flat(variables["batch_stats"])[name], err_msg=name)
    assert not np.allclose(train_logits, expected)


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


def train_steps(arch, finetune, count=3):
    """A few train steps of jaxtl.engine.steps with the stages the config's strategy freezes."""
    config = config_of("eyepacs")
    config.model.arch = arch
    config.optim.name, config.optim.schedule, config.optim.lr = "sgd", "flat", 0.1
    for key, value in finetune.items():
        config.finetune[key] = value
    opt = optim.make_optimizer(config, steps_per_epoch=2, total_steps=10)
    model = models.create_model(arch, num_outputs=3, head="mlp_128")
    mesh = steps.make_mesh()
    state = steps.init_state(model, opt.tx, seed=0, image_shape=(32, 32, 3), mesh=mesh)
    initial = jax.device_get({"params": state.params, "batch_stats": state.batch_stats})
    frozen = opt.plan.frozen_at(0)
    train_step = steps.make_train_step(model, opt.tx, mesh, frozen=frozen,
                                       task=tasks.multiclass(["a", "b", "c"]))
    layout = pipeline.Layout.from_mesh(mesh)
    batch = {"image": np.random.default_rng(1).normal(size=(4, 32, 32, 3)).astype(np.float32),
             "label": np.array([0, 1, 2, 1], np.int32)}
    batch = {k: jax.make_array_from_process_local_data(layout.sharding, v)
             for k, v in batch.items()}
    for _ in range(count):
        state, _ = train_step(state, batch)
    return frozen, initial, {"params": state.params, "batch_stats": state.batch_stats}


@pytest.mark.parametrize("arch, finetune, frozen_prefixes", [
    ("small_cnn", {"strategy": "freeze_stages", "freeze_stages": 2},
     ("backbone/block1_", "backbone/block2_")),
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
