"""Inception-V3: timm layout and count, input sizes, pooling."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from zoo_helpers import (
    assert_timm_keys_map,
    init_shapes,
    parameter_count,
    shapes_by_name,
    traced_init,
)

from jaxtl.models import create_model
from jaxtl.models.inception import _avg_pool_3x3

# timm 1.0.31 (torch 2.14.1): sum(p.numel() for p in timm.create_model("inception_v3").parameters()),
# 1000 classes. timm's default has aux_logits=False, so no `AuxLogits` branch is built or counted;
# its `fc` is a Linear, like the `linear` head's `fc`.
TIMM_PARAM_COUNT = 23_834_568
TIMM_TENSORS = (284, 188)  # state dict: parameters, BN buffers without num_batches_tracked
# timm 1.0.31: forward_features spatial size per input size (74 px fails in timm too).
TIMM_FEATURE_SIZES = {75: 1, 256: 6, 299: 8, 512: 14}
# Some timm state-dict entries and their torch shapes (timm 1.0.31).
TIMM_KEYS = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_1a_3x3.bn.weight": (32,),
    "Conv2d_4a_3x3.bn.running_var": (192,),
    "Mixed_5b.branch5x5_2.conv.weight": (64, 48, 5, 5),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
    "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
    "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
    "Mixed_6b.branch7x7_3.conv.weight": (192, 128, 7, 1),
    "Mixed_6e.branch7x7dbl_5.bn.running_mean": (192,),
    "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
    "Mixed_7c.branch3x3dbl_3a.conv.weight": (384, 384, 1, 3),
    "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
    "Mixed_7c.branch_pool.bn.bias": (192,),
    "fc.weight": (1000, 2048),
    "fc.bias": (1000,),
}


_init_shapes = functools.partial(init_shapes, size=75)


def test_param_count_matches_timm():
    variables = traced_init("inception_v3").variables
    assert parameter_count(variables) == TIMM_PARAM_COUNT
    assert len(jax.tree.leaves(variables["params"])) == TIMM_TENSORS[0]
    assert len(jax.tree.leaves(variables["batch_stats"])) == TIMM_TENSORS[1]


def test_timm_state_dict_names_map_mechanically():
    variables = traced_init("inception_v3").variables
    assert_timm_keys_map(variables, TIMM_KEYS, classifier="fc")
    params = shapes_by_name(variables["params"])
    assert not any("AuxLogits" in p for p in params)
    assert not any(p.endswith("bias") for p in params if "/conv/" in p)
    top = {p.split("/")[1] for p in params if p.startswith("backbone/")}
    assert top == {"Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"} | {
        f"Mixed_{m}" for m in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c")
    }


@pytest.mark.parametrize("size", sorted(TIMM_FEATURE_SIZES))
def test_input_sizes(size):
    model = create_model("inception_v3", num_outputs=4)
    x = jnp.zeros((1, size, size, 3))

    def run():
        variables = model.init(jax.random.key(0), x, train=False)
        capture = lambda mdl, method: mdl.name == "Mixed_7c" and method == "__call__"  # noqa: E731
        return model.apply(variables, x, train=False, capture_intermediates=capture)

    (logits, _), state = jax.eval_shape(run)
    found = state["intermediates"]["backbone"]["Mixed_7c"]["__call__"][0]
    n = TIMM_FEATURE_SIZES[size]
    assert found.shape == (1, n, n, 2048)
    assert logits.shape == (1, 4) and logits.dtype == jnp.float32


def test_too_small_input_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 75"):
        _init_shapes(create_model("inception_v3", num_outputs=4), size=74)


def test_pool_branch_averages_with_zero_padding_counted():
    x = np.random.default_rng(0).normal(size=(1, 4, 5, 2)).astype(np.float32)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    expected = np.stack(
        [np.stack([padded[:, i : i + 3, j : j + 3].sum(axis=(1, 2)) / 9 for j in range(5)], axis=1) for i in range(4)],
        axis=1,
    )
    np.testing.assert_allclose(_avg_pool_3x3(jnp.asarray(x)), expected, rtol=1e-5, atol=1e-6)


