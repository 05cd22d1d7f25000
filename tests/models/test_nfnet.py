"""NF-ResNet50: timm layout and count, scaled weight standardisation, alpha/beta, pooling, init."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from zoo_helpers import (
    assert_timm_keys_map,
    fast_jit_no_fusion,
    images,
    parameter_count,
    shapes_by_name,
    traced_init,
)

from jaxtl.models.nfnet import NormFreeBlock, avg_pool_ceil, block_betas
from jaxtl.models.std_layers import ScaledStdConv2d

# timm 1.0.31 (torch 2.14.1): sum(p.numel() for p in timm.create_model(name).parameters()),
# 1000 classes; timm's `head.fc` is a Linear, like the `linear` head's `fc`.
TIMM_PARAM_COUNT = 25_557_032
TIMM_PARAM_TENSORS = 161  # no buffers
# timm 1.0.31: [[block.beta for block in stage] for stage in model.stages]
TIMM_BETAS = [
    [1.0, 0.980580675691, 0.962250448649],
    [0.944911182523, 0.980580675691, 0.962250448649, 0.944911182523],
    [0.928476690885, 0.980580675691, 0.962250448649, 0.944911182523, 0.928476690885, 0.912870929175],
    [0.898026510134, 0.980580675691, 0.962250448649],
]
# Some timm state-dict entries and their torch shapes (timm 1.0.31).
TIMM_KEYS = {
    "stem.conv.weight": (64, 3, 7, 7),
    "stem.conv.bias": (64,),
    "stem.conv.gain": (64, 1, 1, 1),
    "stages.0.0.downsample.conv.weight": (256, 64, 1, 1),
    "stages.0.0.downsample.conv.gain": (256, 1, 1, 1),
    "stages.0.0.conv1.weight": (64, 64, 1, 1),
    "stages.0.2.conv3.gain": (256, 1, 1, 1),
    "stages.1.0.conv2.weight": (128, 128, 3, 3),
    "stages.1.0.downsample.conv.bias": (512,),
    "stages.3.2.conv3.weight": (2048, 512, 1, 1),
    "head.fc.weight": (1000, 2048),
    "head.fc.bias": (1000,),
}
RELU_GAMMA = 1.7139588594436646


def test_param_count_matches_timm():
    variables = traced_init("nf_resnet50").variables
    assert set(variables) == {"params"}
    assert parameter_count(variables) == TIMM_PARAM_COUNT
    assert len(jax.tree.leaves(variables)) == TIMM_PARAM_TENSORS


def test_timm_state_dict_names_map_mechanically():
    variables = traced_init("nf_resnet50").variables
    assert_timm_keys_map(variables, TIMM_KEYS, classifier="head.fc")
    params = shapes_by_name(variables["params"])
    blocks = {p.split("/")[1] for p in params if p.startswith("backbone/stages_")}
    assert blocks == {f"stages_{i}_{j}" for i, d in enumerate((3, 4, 6, 3)) for j in range(d)}
    projected = {p.split("/")[1] for p in params if "/downsample/" in p}
    assert projected == {f"stages_{i}_0" for i in range(4)}


def test_betas_match_timm():
    np.testing.assert_allclose(sum(block_betas((3, 4, 6, 3), 0.2), []), sum(TIMM_BETAS, []), rtol=1e-11)


def test_scaled_std_conv_matches_reference():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 3, 6)).astype(np.float32)
    kernel = rng.normal(size=(1, 1, 6, 4)).astype(np.float32)
    gain, bias = rng.uniform(0.5, 2.0, 4).astype(np.float32), rng.normal(size=4).astype(np.float32)
    conv = ScaledStdConv2d(4, 1, gamma=RELU_GAMMA, eps=1e-5)
    got = conv.apply({"params": {"kernel": kernel, "gain": gain, "bias": bias}}, x)
    w = kernel.reshape(6, 4).astype(np.float64)
    w = (w - w.mean(0)) / np.sqrt(w.var(0) + 1e-5) * gain * RELU_GAMMA / math.sqrt(6)
    np.testing.assert_allclose(got, np.einsum("nhwc,co->nhwo", x, w) + bias, rtol=1e-4, atol=1e-5)


def test_block_init_is_identity_and_matches_timm_init():
    block = NormFreeBlock(16, beta=0.9)  # 16 -> 16 channels, stride 1: identity shortcut
    x = images(1, size=5, channels=16)
    variables = fast_jit_no_fusion(lambda k, x: block.init(k, x))(jax.random.key(0), x)
    params = variables["params"]
    np.testing.assert_array_equal(params["conv3"]["gain"], 0.0)  # timm gain_init=0 (skipinit off)
    np.testing.assert_array_equal(params["conv1"]["gain"], 1.0)
    np.testing.assert_array_equal(params["conv2"]["bias"], 0.0)
    # kaiming_normal_(mode="fan_in", nonlinearity="linear")
    kernel = np.asarray(params["conv2"]["kernel"])
    assert kernel.shape == (3, 3, 8, 8)  # bottleneck 16 / 4 rounded up to a multiple of 8
    np.testing.assert_allclose(kernel.std(), 1 / math.sqrt(9 * 8), rtol=0.15)
    np.testing.assert_allclose(fast_jit_no_fusion(block.apply)(variables, x), x, atol=1e-6)


def _reference_avg_pool_ceil(x: np.ndarray) -> np.ndarray:
    """torch AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False): a cut window averages what it has."""
    n, h, w, c = x.shape
    out = np.empty((n, -(-h // 2), -(-w // 2), c), x.dtype)
    for i in range(out.shape[1]):
        for j in range(out.shape[2]):
            out[:, i, j] = x[:, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].mean(axis=(1, 2))
    return out


@pytest.mark.parametrize("shape", [(2, 4, 6, 3), (1, 5, 7, 2), (1, 1, 3, 1)])
def test_downsample_avg_pool_like_torch(shape):
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    np.testing.assert_allclose(avg_pool_ceil(jnp.asarray(x), 2, 2), _reference_avg_pool_ceil(x), rtol=1e-6, atol=1e-7)


