"""The optimizer assembled from the config, against the textbook update rules."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import config_of

from jaxtl import models, optim


def run_config(optim_values=(), finetune_values=(), arch="resnet18"):
    config = config_of("eyepacs")
    config.model.arch = arch
    for key, value in dict(optim_values).items():
        config.optim[key] = value
    for key, value in dict(finetune_values).items():
        config.finetune[key] = value
    return config


def make(optim_values=(), finetune_values=(), steps_per_epoch=10, total_steps=100):
    return optim.make_optimizer(run_config(optim_values, finetune_values), steps_per_epoch,
                                total_steps)


def one_step(name, **values):
    tx = make({"name": name, "schedule": "flat", **values}).tx
    params = {"w": jnp.array([1.0, -2.0])}
    grads = {"w": jnp.array([0.5, 0.25])}
    state = tx.init(params)
    updates, state = tx.update(grads, state, params)
    updates, _ = tx.update(grads, state, optax.apply_updates(params, updates))
    return params, grads, updates


def test_sgd_nesterov_with_coupled_weight_decay():
    params, grads, updates = one_step("sgd", lr=0.1, momentum=0.9, nesterov=True,
                                      weight_decay=0.0)
    g = np.array([0.5, 0.25])
    # torch-style Nesterov: v1 = g, v2 = 0.9 g + g; step 2 update = -lr (g + 0.9 v2)
    np.testing.assert_allclose(updates["w"], -0.1 * (g + 0.9 * (0.9 * g + g)), rtol=1e-6)
    _, _, decayed = one_step("sgd", lr=0.1, momentum=0.0, nesterov=False, weight_decay=0.1,
                             weight_decay_mask="all")
    w1 = np.array([1.0, -2.0]) - 0.1 * (g + 0.1 * np.array([1.0, -2.0]))
    np.testing.assert_allclose(decayed["w"], -0.1 * (g + 0.1 * w1), rtol=1e-6)


def test_adam_first_step_is_lr_times_sign():
    tx = make({"name": "adam", "schedule": "flat", "lr": 0.01, "weight_decay": 0.0}).tx
    params = {"w": jnp.array([1.0, -2.0])}
    updates, _ = tx.update({"w": jnp.array([0.5, -3.0])}, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], [-0.01, 0.01], rtol=1e-4)


def test_adam_weight_decay_is_coupled_l2():
    # coupled: the decay enters the gradient, so Adam's normalisation removes its scale
    tx = make({"name": "adam", "schedule": "flat", "lr": 0.01, "weight_decay": 0.5,
               "weight_decay_mask": "all"}).tx
    params = {"w": jnp.array([2.0])}
    updates, _ = tx.update({"w": jnp.array([-0.5])}, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], [-0.01], rtol=1e-4)  # sign(-0.5 + 0.5 * 2) = +


def test_adamw_decay_is_decoupled():
    tx = make({"name": "adamw", "schedule": "flat", "lr": 0.01, "weight_decay": 0.5,
               "weight_decay_mask": "all"}).tx
    params = {"w": jnp.array([2.0])}
    updates, _ = tx.update({"w": jnp.array([1.0])}, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], [-0.01 * (1.0 + 0.5 * 2.0)], rtol=1e-4)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "cool_momentum"])
def test_default_weight_decay_spares_biases_and_normalisation_parameters(name):
    # With a zero gradient and lr 1: SGD/CoolMomentum step by -wd p (CoolMomentum: (1 + rho)
    # / 2 of it), Adam by -sign(p), AdamW by -wd p: nonzero exactly where p is decayed.
    tx = make({"name": name, "schedule": "flat", "lr": 1.0, "weight_decay": 0.1,
               "momentum": 0.0, "nesterov": False}).tx
    params = {"conv": {"kernel": jnp.ones((3, 3, 2, 4)), "bias": jnp.ones(4)},
              "bn": {"scale": jnp.ones(4), "bias": jnp.ones(4)}, "fc": {"kernel": jnp.ones((4, 2))}}
    updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
    decayed = jax.tree.map(lambda u: bool(jnp.all(u != 0)), updates)
    assert decayed == {"conv": {"kernel": True, "bias": False},
                       "bn": {"scale": False, "bias": False}, "fc": {"kernel": True}}


def test_method_names_say_when_a_schedule_is_added_to_cool_momentum():
    def name(optimizer, schedule):
        return optim.method_name(run_config({"name": optimizer, "schedule": schedule}).optim)

    assert name("cool_momentum", "flat") == "CoolMomentum"  # the published method
    assert name("cool_momentum", "gradual") == "CoolMomentum + gradual"
    assert name("sgd", "sudden") == "SGD + sudden"


def test_cool_momentum_from_config_cools_over_the_whole_run():
    tx = make({"name": "cool_momentum", "schedule": "flat", "lr": 0.01, "rho_0": 0.99,
               "alpha": 0.0, "weight_decay": 0.0}, steps_per_epoch=5, total_steps=20).tx
    params = {"w": jnp.array([1.0])}
    state = tx.init(params)
    updates = []
    for _ in range(21):
        update, state = tx.update({"w": jnp.array([1.0])}, state, params)
        updates.append(float(update["w"][0]))
    # rho_0 at the first step: x1 = lr (1 + rho_0) / 2 g; after S = 20 steps rho is 0 and the
    # update is lr / 2 * g.
    assert updates[0] == pytest.approx(-0.01 * 1.99 / 2)
    assert updates[20] == pytest.approx(-0.01 / 2, rel=1e-5)


def test_gradients_are_clipped_to_the_global_norm():
    tx = make({"name": "sgd", "schedule": "flat", "lr": 1.0, "momentum": 0.0,
               "weight_decay": 0.0, "clip_grad_norm": 1.0}).tx
    params = {"a": jnp.zeros(2), "b": jnp.zeros(1)}
    big = {"a": jnp.array([3.0, 0.0]), "b": jnp.array([4.0])}  # global norm 5
    updates, _ = tx.update(big, tx.init(params), params)
    np.testing.assert_allclose(updates["a"], [-0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(updates["b"], [-0.8], rtol=1e-6)
    small = {"a": jnp.array([0.3, 0.0]), "b": jnp.array([0.4])}  # norm 0.5: unchanged
    updates, _ = tx.update(small, tx.init(params), params)
    np.testing.assert_allclose(updates["a"], [-0.3, 0.0], rtol=1e-6)


# --- fine-tuning strategies on a ResNet-shaped parameter tree ---------------------------------
RESNET_STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")


def resnet_tree(fill: float = 1.0) -> dict:
    """A parameter tree with one leaf per ResNet stage, named as in jaxtl's resnet18."""
    leaf = lambda: jnp.full((2,), fill)  # noqa: E731
    return {"backbone": {"conv1": {"kernel": leaf()}, "bn1": {"scale": leaf()},
                         **{f"layer{i}_0": {"conv1": {"kernel": leaf()}} for i in range(1, 5)}},
            "head": {"fc": {"kernel": leaf(), "bias": leaf()}}}


def stage_leaf(tree, stage):
    backbone = tree["backbone"]
    return backbone["conv1"]["kernel"] if stage == "stem" else backbone[f"{stage}_0"]["conv1"][
        "kernel"]


def bits(x):
    return np.asarray(x).view(np.uint32)


SGD = {"name": "sgd", "schedule": "flat", "lr": 0.1, "momentum": 0.0, "nesterov": False,
       "weight_decay": 0.0}


def test_linear_probe_keeps_the_backbone_bit_for_bit_and_holds_no_state_for_it():
    opt = make(SGD, {"strategy": "linear_probe"})
    params = resnet_tree()
    params["backbone"]["bn1"]["scale"] = jnp.array([-0.0, 0.0])  # signed zeros survive too
    state = opt.tx.init(params)
    grads = resnet_tree(0.5)
    new = params
    for _ in range(3):
        updates, state = opt.tx.update(grads, state, new)
        new = optax.apply_updates(new, updates)
    for before, after in zip(jax.tree.leaves(params["backbone"]),
                             jax.tree.leaves(new["backbone"])):
        np.testing.assert_array_equal(bits(after), bits(before))
    np.testing.assert_allclose(new["head"]["fc"]["kernel"], 1.0 - 3 * 0.1 * 0.5, rtol=1e-6)
    # optimizer memory: SGD without momentum keeps nothing per parameter anyway; use Adam
    adam = make({**SGD, "name": "adam"}, {"strategy": "linear_probe"})
    sizes = sum(x.size for x in jax.tree.leaves(adam.tx.init(params)))
    assert sizes == 2 * 4 + 2  # mu and nu of the head's two leaves, plus counts


def test_freeze_first_stages():
    opt = make(SGD, {"strategy": "freeze_stages", "freeze_stages": 2})
    assert [opt.plan.frozen_at(0).contains(("backbone", name, "x")) for name in
            ("conv1", "bn1", "layer1_0", "layer2_0", "layer4_0")] == [True] * 3 + [False] * 2
    params = resnet_tree()
    updates, _ = opt.tx.update(resnet_tree(0.5), opt.tx.init(params), params)
    for stage in RESNET_STAGES:
        expected = [-0.0, -0.0] if stage in ("stem", "layer1") else [-0.05, -0.05]
        np.testing.assert_array_equal(bits(stage_leaf(updates, stage)),
                                      bits(np.float32(expected)))


def test_gradual_unfreezing_starts_each_stage_fresh_on_the_run_schedule():
    # Adam's first step from a fresh state is lr * sign(g): a stage unfrozen at step s moves
    # by the schedule's lr at s (sudden: halved at epoch 1), with no history before s.
    opt = make({**SGD, "name": "adam", "schedule": "sudden", "decay_epochs": (1,),
                "decay_factor": 0.5, "lr": 0.01},
               {"strategy": "gradual_unfreeze", "unfreeze_epochs": (0.5, 1.5)},
               steps_per_epoch=4, total_steps=12)
    assert opt.plan.start_steps == (None, None, None, 6, 2)
    params = resnet_tree()
    state = opt.tx.init(params)
    tx_update = jax.jit(opt.tx.update)
    moves = {stage: [] for stage in RESNET_STAGES}
    for step in range(8):
        updates, state = tx_update(resnet_tree(0.5), state, params)
        for stage in RESNET_STAGES:
            moves[stage].append(float(stage_leaf(updates, stage)[0]))
        assert opt.plan.frozen_at(step).contains(("backbone", "layer4_0")) == (step < 2)
        assert opt.plan.frozen_at(step).contains(("backbone", "layer3_0")) == (step < 6)
    assert moves["stem"] == moves["layer2"] == [0.0] * 8
    np.testing.assert_allclose(moves["layer4"], [0, 0, -0.01, -0.01, -0.005, -0.005, -0.005,
                                                 -0.005], rtol=1e-4)
    np.testing.assert_allclose(moves["layer3"], [0] * 6 + [-0.005, -0.005], rtol=1e-4)


def test_gradual_unfreezing_with_cool_momentum_cools_each_stage_by_the_end():
    opt = make({"name": "cool_momentum", "schedule": "flat", "lr": 0.01, "alpha": 0.0,
                "weight_decay": 0.0},
               {"strategy": "gradual_unfreeze", "unfreeze_epochs": (0, 2)},
               steps_per_epoch=5, total_steps=20)
    params = resnet_tree()
    state = opt.tx.init(params)
    for _ in range(20):
        _, state = opt.tx.update(resnet_tree(0.5), state, params)
    updates, _ = opt.tx.update(resnet_tree(2.0), state, params)
    # both stages (started at 0 and at step 10) have cooled to momentum 0: plain SGD at lr / 2
    np.testing.assert_allclose(stage_leaf(updates, "layer4"), -0.01 / 2 * 2.0, rtol=1e-5)
    np.testing.assert_allclose(stage_leaf(updates, "layer3"), -0.01 / 2 * 2.0, rtol=1e-5)


def test_stage_learning_rate_multipliers():
    opt = make(SGD, {"stage_lr_multipliers": (0.01, 0.1, 0.2, 0.5, 1.0)})
    params = resnet_tree()
    updates, _ = opt.tx.update(resnet_tree(1.0), opt.tx.init(params), params)
    for stage, multiplier in zip(RESNET_STAGES, (0.01, 0.1, 0.2, 0.5, 1.0)):
        np.testing.assert_allclose(stage_leaf(updates, stage), -0.1 * multiplier, rtol=1e-6)
    np.testing.assert_allclose(updates["head"]["fc"]["kernel"], -0.1, rtol=1e-6)


def test_clipping_counts_only_trainable_gradients():
    opt = make({**SGD, "lr": 1.0, "clip_grad_norm": 1.0},
               {"strategy": "freeze_stages", "freeze_stages": 4})
    params = resnet_tree()
    grads = jax.tree.map(lambda x: jnp.zeros_like(x), params)
    grads["backbone"]["conv1"]["kernel"] = jnp.array([100.0, 0.0])  # frozen: not counted
    grads["backbone"]["layer4_0"]["conv1"]["kernel"] = jnp.array([3.0, 0.0])
    grads["head"]["fc"]["bias"] = jnp.array([0.0, 4.0])
    updates, _ = opt.tx.update(grads, opt.tx.init(params), params)
    np.testing.assert_allclose(stage_leaf(updates, "layer4"), [-0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(updates["head"]["fc"]["bias"], [0.0, -0.8], rtol=1e-6)
    np.testing.assert_array_equal(bits(stage_leaf(updates, "stem")), bits(np.float32([-0., -0.])))


def test_full_strategy_is_the_plain_optimizer():
    opt = make(SGD)
    assert opt.plan.uniform and not opt.plan.frozen_at(0)
    params = resnet_tree()
    state = opt.tx.init(params)
    assert not any(isinstance(s, optax.MultiTransformState) for s in jax.tree.leaves(
        state, is_leaf=lambda s: isinstance(s, optax.MultiTransformState)))


# --- config rules of optim and finetune ----------------------------------------------------
@pytest.mark.parametrize("optim_values, finetune_values, message", [
    ({"schedule": "cosine"}, {},
     "config.optim.schedule is 'cosine'; allowed values: flat, gradual, sudden, triangular, "
     "one_cycle"),
    ({"gradual_decay": "linear"}, {}, "allowed values: cosine, exponential"),
    ({"gradual_decay": "exponential", "end_lr_fraction": 0.0}, {},
     "config.optim.end_lr_fraction must be above 0 for the exponential gradual decay"),
    ({"clip_grad_norm": -1.0}, {}, "config.optim.clip_grad_norm is -1.0"),
    ({}, {"strategy": "freeze"}, "allowed values: full, linear_probe, freeze_stages, "
                                 "gradual_unfreeze"),
    ({}, {"strategy": "freeze_stages", "freeze_stages": 6},
     "config.finetune.freeze_stages is 6; expected 1 .. 5 (resnet18 has 5 stages: stem, "
     "layer1, layer2, layer3, layer4)"),
    ({}, {"freeze_stages": 2}, "finetune.strategy is 'full'; set it to 0 or use freeze_stages"),
    ({}, {"strategy": "gradual_unfreeze"}, "gradual_unfreeze needs 1 .. 5 epochs"),
    ({}, {"unfreeze_epochs": (1, 2)}, "set it to () or use gradual_unfreeze"),
    ({}, {"strategy": "gradual_unfreeze", "unfreeze_epochs": (3, 1)},
     "the epochs must be in ascending order"),
    ({}, {"stage_lr_multipliers": (0.1, 1.0)},
     "config.finetune.stage_lr_multipliers has 2 values; expected () or one per stage"),
    ({}, {"stage_lr_multipliers": (0.1, 0.0, 1, 1, 1)}, "expected a tuple of positive numbers"),
])
def test_config_rules_name_the_key_and_what_is_allowed(optim_values, finetune_values, message):
    from jaxtl.config import validation as configuration
    from jaxtl.core.errors import ConfigError

    config = run_config(optim_values, finetune_values)
    with pytest.raises(ConfigError) as error:
        configuration.validate(config)
    assert message in str(error.value)


def test_every_schedule_and_strategy_passes_validation_when_complete():
    from jaxtl.config import validation as configuration

    for schedule in optim.SCHEDULES:
        configuration.validate(run_config({"schedule": schedule}))
    configuration.validate(run_config({"gradual_decay": "exponential", "end_lr_fraction": 0.01}))
    for finetune in ({"strategy": "linear_probe"},
                     {"strategy": "freeze_stages", "freeze_stages": 5},
                     {"strategy": "gradual_unfreeze", "unfreeze_epochs": (0, 1.5, 3)},
                     {"stage_lr_multipliers": (0.1, 0.2, 0.4, 0.8, 1)}):
        configuration.validate(run_config({}, finetune))


@pytest.mark.parametrize("name, lr", [("sgd", 0.05), ("adam", 0.2), ("adamw", 0.2),
                                      ("cool_momentum", 0.05)])
@pytest.mark.parametrize("schedule", sorted(optim.SCHEDULES))
def test_every_optimizer_with_every_schedule_minimises_a_quadratic(name, lr, schedule):
    config = run_config({"name": name, "lr": lr, "schedule": schedule, "warmup_epochs": 1.0,
                         "end_lr_fraction": 0.01, "decay_epochs": (3,), "cycle_epochs": 2.0,
                         "weight_decay": 0.0})
    tx = optim.make_optimizer(config, steps_per_epoch=10, total_steps=60).tx
    target = jnp.array([1.0, -2.0, 0.5])
    loss = lambda p: jnp.sum((p["w"] - target) ** 2)  # noqa: E731

    @jax.jit
    def step(params, state):
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        return optax.apply_updates(params, updates), state

    params = {"w": jnp.zeros(3)}
    state = tx.init(params)
    for _ in range(60):
        params, state = step(params, state)
    assert float(loss(params)) < 0.05 * float(loss({"w": jnp.zeros(3)}))


def test_kernels_mask_leaves_out_1d_parameters_and_vit_embeddings_and_tokens():
    """timm's param_groups_weight_decay with no_weight_decay(): every 1-D parameter, and
    pos_embed and the class token of test_vit (registers: a tree of their own below)."""
    from flax import traverse_util

    model = models.create_model("test_vit", num_outputs=3)
    shapes = jax.eval_shape(lambda: model.init({"params": jax.random.PRNGKey(0)},
                                               jnp.zeros((1, 32, 32, 3)), train=False))
    params = shapes["params"]
    mask = traverse_util.flatten_dict(optim.decay_mask(run_config().optim)(params), sep="/")
    shapes = traverse_util.flatten_dict(params, sep="/")
    undecayed = {name for name, decayed in mask.items() if not decayed}
    one_dimensional = {name for name, shape in shapes.items() if len(shape.shape) == 1}
    assert undecayed == one_dimensional | {"backbone/pos_embed", "backbone/cls_token"}
    assert len(undecayed) < len(mask)
    registers = {"backbone": {"reg_token": jnp.ones((1, 4, 8)), "w": jnp.ones((8, 8))}}
    assert optim.decay_mask(run_config().optim)(registers) == {
        "backbone": {"reg_token": False, "w": True}}
    assert optim.decay_mask(run_config({"weight_decay_mask": "all"}).optim) is None


def test_adamw_leaves_vit_position_embeddings_and_class_token_undecayed():
    model = models.create_model("test_vit", num_outputs=3)
    shapes = jax.eval_shape(lambda: model.init({"params": jax.random.PRNGKey(0)},
                                               jnp.zeros((1, 32, 32, 3)), train=False))
    params = jax.tree.map(lambda s: jnp.ones(s.shape, s.dtype), shapes["params"])
    tx = make({"name": "adamw", "schedule": "flat", "lr": 0.1, "weight_decay": 0.5}).tx
    zero = jax.tree.map(jnp.zeros_like, params)
    updates, _ = jax.jit(tx.update)(zero, tx.init(params), params)
    backbone = updates["backbone"]
    # zero gradients: AdamW's update is the decoupled decay alone, -lr * wd * p where decayed
    for name in ("pos_embed", "cls_token"):
        np.testing.assert_array_equal(backbone[name], 0.0)
    np.testing.assert_allclose(backbone["blocks_0"]["attn"]["qkv"]["kernel"], -0.1 * 0.5)
    np.testing.assert_array_equal(backbone["blocks_0"]["attn"]["qkv"]["bias"], 0.0)
