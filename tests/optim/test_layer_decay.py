"""Layer-wise learning-rate decay: timm's grouping and scales, per variable of real backbones."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import config_of
from flax import traverse_util

from jaxtl import models, optim
from jaxtl.optim.layer_decay import layer_ids, stage_scales

# timm 1.0.31, param_groups_layer_decay(model, layer_decay=0.75) of a VisionTransformer with
# test_vit's settings (patch 16, width 64, depth 6, 2 heads, mlp_ratio 3, class token
# pooling), each parameter's `lr_scale` by module (jaxtl's names; timm's `blocks.i` is
# `blocks_i`, its `head` the classifier's `head`). Printed once with /work/refvenv's timm:
# cls_token, pos_embed and patch_embed are layer 0, blocks.i layer i + 1, `norm` joins the last
# block and the head is layer 7: lr_scale = 0.75 ** (7 - layer).
TIMM_TEST_VIT_LR_SCALES = {
    "backbone/cls_token": 0.13348388671875,
    "backbone/pos_embed": 0.13348388671875,
    "backbone/patch_embed/": 0.13348388671875,
    "backbone/blocks_0/": 0.177978515625,
    "backbone/blocks_1/": 0.2373046875,
    "backbone/blocks_2/": 0.31640625,
    "backbone/blocks_3/": 0.421875,
    "backbone/blocks_4/": 0.5625,
    "backbone/blocks_5/": 0.75,
    "backbone/norm/": 0.75,
    "head/": 1.0,
}


def params_of(arch: str, size: int = 32) -> dict:
    """The model's parameters, all ones (their values do not matter here)."""
    model = models.create_model(arch, num_outputs=3)
    shapes = jax.eval_shape(lambda: model.init({"params": jax.random.PRNGKey(0)},
                                               jnp.zeros((1, size, size, 3)), train=False))
    return jax.tree.map(lambda s: jnp.ones(s.shape, s.dtype), shapes["params"])


def lr_scales(arch: str, optim_values=(), finetune_values=(), size: int = 32) -> dict:
    """Each variable's learning rate, measured: one step of plain SGD at lr 1 on gradients of
    ones moves each parameter by minus its rate."""
    config = config_of("eyepacs")
    config.model.arch = arch
    values = {"name": "sgd", "schedule": "flat", "lr": 1.0, "momentum": 0.0,
              "nesterov": False, "weight_decay": 0.0, **dict(optim_values)}
    for key, value in values.items():
        config.optim[key] = value
    for key, value in dict(finetune_values).items():
        config.finetune[key] = value
    tx = optim.make_optimizer(config, steps_per_epoch=10, total_steps=100).tx
    params = params_of(arch, size)
    # one compilation (op-by-op dispatch is slow on a busy CPU)
    updates, _ = jax.jit(tx.update)(jax.tree.map(jnp.ones_like, params), tx.init(params), params)
    flat = traverse_util.flatten_dict(updates, sep="/")
    return {name: -np.asarray(update) for name, update in flat.items()}


def test_test_vit_scales_match_timm_param_groups_layer_decay():
    measured = lr_scales("test_vit", {"layer_decay": 0.75})
    seen = set()
    for name, rates in measured.items():
        prefixes = [p for p in TIMM_TEST_VIT_LR_SCALES if name.startswith(p)]
        assert len(prefixes) == 1, name
        seen.add(prefixes[0])
        np.testing.assert_allclose(rates, TIMM_TEST_VIT_LR_SCALES[prefixes[0]], rtol=1e-6,
                                   err_msg=name)
    assert seen == set(TIMM_TEST_VIT_LR_SCALES)
    # the table is the formula: stem 0.75 ** 7, block i 0.75 ** (6 - i), norm as block 5
    assert TIMM_TEST_VIT_LR_SCALES["backbone/pos_embed"] == 0.75 ** 7
    for i in range(6):
        assert TIMM_TEST_VIT_LR_SCALES[f"backbone/blocks_{i}/"] == 0.75 ** (6 - i)


def test_layer_ids_per_family_by_hand():
    # ViT with class-token pooling: `norm` in the last block's layer, the head above
    assert layer_ids("test_vit") == ((0, 1, 2, 3, 4, 5, 6, 6), 7)
    # ViT with the patch tokens' mean and fc_norm (MAE, RETFound): fc_norm in the head's layer
    assert layer_ids("vit_base_patch16_224_avg") == (tuple(range(14)), 13)
    # ConvNeXt: stem, 4 stages, head norm with the head
    assert layer_ids("test_convnext") == ((0, 1, 2, 3, 4, 5), 5)
    # CNNs: the stages are the blocks, the head above the last
    assert layer_ids("resnet18") == ((0, 1, 2, 3, 4), 5)
    assert stage_scales("resnet18", 0.5) == (0.5 ** 5, 0.5 ** 4, 0.5 ** 3, 0.5 ** 2, 0.5)
    assert stage_scales("test_convnext", 0.5)[-1] == 1.0


def test_layer_decay_of_one_changes_nothing():
    config = config_of("eyepacs")
    config.model.arch = "test_vit"
    assert optim.make_optimizer(config, steps_per_epoch=10, total_steps=100).plan.uniform
    config.optim.layer_decay = 0.9
    assert not optim.make_optimizer(config, steps_per_epoch=10, total_steps=100).plan.uniform


def test_layer_decay_multiplies_stage_multipliers_and_frozen_stages_stay_frozen():
    stage_multipliers = (1.0, 2.0, 4.0, 0.5)  # small_cnn: block1 .. block4
    measured = lr_scales("small_cnn", {"layer_decay": 0.5},
                         {"strategy": "freeze_stages", "freeze_stages": 1,
                          "stage_lr_multipliers": stage_multipliers})
    expected = {"block1_": None,  # frozen: no update at all
                "block2_": 2.0 * 0.5 ** 3, "block3_": 4.0 * 0.5 ** 2, "block4_": 0.5 * 0.5}
    checked = set()
    for name, rates in measured.items():
        if name.startswith("head/"):
            np.testing.assert_allclose(rates, 1.0, err_msg=name)
            continue
        prefix = name.split("/")[1][:len("block1_")]
        checked.add(prefix)
        if expected[prefix] is None:
            assert np.all(rates == 0.0), name
        else:
            np.testing.assert_allclose(rates, expected[prefix], rtol=1e-6, err_msg=name)
    assert checked == set(expected)


@pytest.mark.parametrize("value", [0.0, -0.5, 1.5])
def test_layer_decay_outside_zero_to_one_is_refused(value):
    from jaxtl.config import validation as configuration
    from jaxtl.core.errors import ConfigError

    config = config_of("eyepacs")
    config.optim.layer_decay = value
    with pytest.raises(ConfigError) as error:
        configuration.validate(config)
    assert (f"config.optim.layer_decay is {value!r}; expected a number above 0, at most 1"
            in str(error.value))


def test_layer_decay_with_adamw_scales_the_step_of_each_stage():
    """AdamW's first step is lr (sign of the gradient) whatever its size: the stage's rate."""
    measured = lr_scales("small_cnn", {"name": "adamw", "layer_decay": 0.5})
    for name, rates in measured.items():
        # block1 .. block4 are layers 0 .. 3, the head layer 4
        layer = 4 if name.startswith("head/") else int(name.split("/")[1][len("block")]) - 1
        np.testing.assert_allclose(rates, 0.5 ** (4 - layer), rtol=1e-4, err_msg=name)
