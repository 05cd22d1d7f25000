"""ResNetV2-50x1 BiT: timm layout and count, weight standardisation, BiT stem."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from zoo_helpers import assert_timm_keys_map, parameter_count, shapes_by_name, traced_init

from jaxtl.models.resnetv2 import fixed_pad_max_pool
from jaxtl.models.std_layers import StdConv2d

# timm 1.0.31 (torch 2.14.1): sum(p.numel() for p in timm.create_model(name).parameters()), 1000
# classes. timm's classifier `head.fc` is a 1x1 Conv2d with bias on the pooled features:
# 2048 * 1000 + 1000 parameters, exactly the `linear` head's Dense `fc`, so totals compare as is.
TIMM_PARAM_COUNT = 25_549_352
TIMM_PARAM_TENSORS = 153  # no buffers: GroupNorm only
# Some timm state-dict entries and their torch shapes (timm 1.0.31).
TIMM_KEYS = {
    "stem.conv.weight": (64, 3, 7, 7),
    "stages.0.blocks.0.downsample.conv.weight": (256, 64, 1, 1),
    "stages.0.blocks.0.norm1.weight": (64,),
    "stages.0.blocks.0.conv1.weight": (64, 64, 1, 1),
    "stages.0.blocks.2.conv3.weight": (256, 64, 1, 1),
    "stages.1.blocks.0.downsample.conv.weight": (512, 256, 1, 1),
    "stages.1.blocks.0.conv2.weight": (128, 128, 3, 3),
    "stages.3.blocks.2.norm3.bias": (512,),
    "norm.weight": (2048,),
    "norm.bias": (2048,),
    "head.fc.weight": (1000, 2048, 1, 1),
    "head.fc.bias": (1000,),
}


def test_param_count_matches_timm():
    variables = traced_init("resnetv2_50x1_bit").variables
    assert set(variables) == {"params"}
    assert parameter_count(variables) == TIMM_PARAM_COUNT
    assert len(jax.tree.leaves(variables)) == TIMM_PARAM_TENSORS


def test_timm_state_dict_names_map_mechanically():
    variables = traced_init("resnetv2_50x1_bit").variables
    assert_timm_keys_map(variables, TIMM_KEYS, classifier="head.fc")
    params = shapes_by_name(variables["params"])
    assert not any(p.endswith("bias") for p in params if "conv" in p)
    for i, depth in enumerate((3, 4, 6, 3)):
        assert f"backbone/stages_{i}/blocks_0/downsample/conv/kernel" in params
        assert f"backbone/stages_{i}/blocks_{depth - 1}/conv3/kernel" in params
        assert f"backbone/stages_{i}/blocks_1/downsample/conv/kernel" not in params
        assert f"backbone/stages_{i}/blocks_{depth}/conv1/kernel" not in params


def _reference_std_conv_1x1(x: np.ndarray, kernel: np.ndarray, eps: float) -> np.ndarray:
    w = kernel.reshape(-1, kernel.shape[-1]).astype(np.float64)
    w = (w - w.mean(0)) / np.sqrt(w.var(0) + eps)
    return np.einsum("nhwc,co->nhwo", x, w)


def test_std_conv_standardises_each_output_channel():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 3, 6)).astype(np.float32)
    kernel = rng.normal(size=(1, 1, 6, 4)).astype(np.float32)
    conv = StdConv2d(4, 1, eps=1e-8)
    got = np.asarray(conv.apply({"params": {"kernel": kernel}}, x))
    np.testing.assert_allclose(got, _reference_std_conv_1x1(x, kernel, 1e-8), rtol=1e-4, atol=1e-5)
    # Invariant to a per-output-channel affine change of the raw weight.
    moved = kernel * np.array([0.5, 2.0, 3.0, 7.0], np.float32) + np.array([1.0, -2.0, 0.0, 0.3], np.float32)
    np.testing.assert_allclose(conv.apply({"params": {"kernel": moved}}, x), got, rtol=1e-3, atol=1e-4)


def test_bit_stem_pool_pads_with_zeros():
    # timm: nn.ConstantPad2d(1, 0.) then nn.MaxPool2d(3, stride=2). The stem output is not yet
    # activated, so zero padding (unlike torch's -inf pool padding) changes border values.
    x = -np.abs(np.random.default_rng(0).normal(size=(1, 7, 6, 2))).astype(np.float32) - 0.1
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    expected = np.stack([
        np.stack([padded[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3].max(axis=(1, 2)) for j in range(3)], axis=1)
        for i in range(4)
    ], axis=1)
    got = np.asarray(fixed_pad_max_pool(jnp.asarray(x)))
    np.testing.assert_array_equal(got, expected)
    assert (got[:, 0] == 0).all() and (got[:, 1:3, 1:3] < 0).all()


