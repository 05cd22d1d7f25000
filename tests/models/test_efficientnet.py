"""EfficientNet-B0..B5 (timm and TF flavours): timm layout and counts, TF 'SAME' padding, bfloat16."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from zoo_helpers import (
    assert_timm_keys_map,
    fast_jit_no_fusion,
    images,
    init_shapes,
    parameter_count,
    random_variables,
    shapes_by_name,
    traced_init,
)

from jaxtl.models import create_model
from jaxtl.models.efficientnet import block_specs
from jaxtl.models.std_layers import Conv2d, pad_same, same_padding

# timm 1.0.31 (torch 2.14.1): sum(p.numel() for p in timm.create_model(name).parameters()),
# 1000 classes; timm's `classifier` is a Linear, like the `linear` head's `fc`. Both
# flavours have the same parameters, they differ in padding and BN eps only.
TIMM_PARAM_COUNTS = {
    "efficientnet_b0": 5_288_548,
    "efficientnet_b1": 7_794_184,
    "efficientnet_b2": 9_109_994,
    "efficientnet_b3": 12_233_232,
    "efficientnet_b4": 19_341_616,
    "efficientnet_b5": 30_389_784,
}
TIMM_PARAM_COUNTS |= {f"tf_{k}": v for k, v in TIMM_PARAM_COUNTS.items()}
# timm 1.0.31: (parameter tensors, BN buffers without num_batches_tracked) in the state dict.
TIMM_TENSORS = {"b0": (213, 98), "b1": (301, 138), "b2": (301, 138), "b3": (340, 156), "b4": (418, 192),
                "b5": (506, 232)}
# timm 1.0.31: [len(stage) for stage in model.blocks], stem channels, stage output channels, num_features.
TIMM_STAGES = {
    "b0": ([1, 2, 2, 3, 3, 4, 1], 32, [16, 24, 40, 80, 112, 192, 320], 1280),
    "b1": ([2, 3, 3, 4, 4, 5, 2], 32, [16, 24, 40, 80, 112, 192, 320], 1280),
    "b2": ([2, 3, 3, 4, 4, 5, 2], 32, [16, 24, 48, 88, 120, 208, 352], 1408),
    "b3": ([2, 3, 3, 5, 5, 6, 2], 40, [24, 32, 48, 96, 136, 232, 384], 1536),
    "b4": ([2, 4, 4, 6, 6, 8, 2], 48, [24, 32, 56, 112, 160, 272, 448], 1792),
    "b5": ([3, 5, 5, 7, 7, 9, 3], 48, [24, 40, 64, 128, 176, 304, 512], 2048),
}
# Some timm state-dict entries and their torch shapes (timm 1.0.31).
TIMM_KEYS = {
    "efficientnet_b0": {
        "conv_stem.weight": (32, 3, 3, 3),
        "bn1.running_var": (32,),
        "blocks.0.0.conv_dw.weight": (32, 1, 3, 3),
        "blocks.0.0.bn1.weight": (32,),
        "blocks.0.0.se.conv_reduce.weight": (8, 32, 1, 1),
        "blocks.0.0.se.conv_reduce.bias": (8,),
        "blocks.0.0.se.conv_expand.weight": (32, 8, 1, 1),
        "blocks.0.0.conv_pw.weight": (16, 32, 1, 1),
        "blocks.0.0.bn2.running_mean": (16,),
        "blocks.1.0.conv_pw.weight": (96, 16, 1, 1),
        "blocks.1.0.conv_dw.weight": (96, 1, 3, 3),
        "blocks.1.0.se.conv_expand.bias": (96,),
        "blocks.1.0.conv_pwl.weight": (24, 96, 1, 1),
        "blocks.1.0.bn3.weight": (24,),
        "blocks.5.3.conv_dw.weight": (1152, 1, 5, 5),
        "blocks.6.0.se.conv_reduce.weight": (48, 1152, 1, 1),
        "blocks.6.0.bn3.running_var": (320,),
        "conv_head.weight": (1280, 320, 1, 1),
        "bn2.bias": (1280,),
        "classifier.weight": (1000, 1280),
        "classifier.bias": (1000,),
    },
    "tf_efficientnet_b5": {
        "conv_stem.weight": (48, 3, 3, 3),
        "blocks.0.2.conv_dw.weight": (24, 1, 3, 3),
        "blocks.0.2.se.conv_reduce.weight": (6, 24, 1, 1),
        "blocks.5.8.conv_dw.weight": (1824, 1, 5, 5),
        "blocks.6.2.conv_pwl.weight": (512, 3072, 1, 1),
        "conv_head.weight": (2048, 512, 1, 1),
        "classifier.weight": (1000, 2048),
    },
}


_images = functools.partial(images, size=64)


_init_shapes = functools.partial(init_shapes, size=64)


@pytest.mark.parametrize("name", sorted(TIMM_PARAM_COUNTS))
def test_param_count_matches_timm(name):
    variables = traced_init(name).variables
    assert parameter_count(variables) == TIMM_PARAM_COUNTS[name]
    tensors, buffers = TIMM_TENSORS[name[-2:]]
    assert len(jax.tree.leaves(variables["params"])) == tensors
    assert len(jax.tree.leaves(variables["batch_stats"])) == buffers


@pytest.mark.parametrize("variant", sorted(TIMM_STAGES))
def test_depth_and_width_scaling_match_timm(variant):
    depths, stem, widths, num_features = TIMM_STAGES[variant]
    backbone = create_model(f"efficientnet_{variant}", num_outputs=2).backbone
    stages = block_specs(backbone.width, backbone.depth)
    assert [len(s) for s in stages] == depths
    assert stages[0][0].in_chs == stem
    assert [s[-1].out_chs for s in stages] == widths
    assert backbone.num_features == num_features


@pytest.mark.parametrize("name", sorted(TIMM_KEYS))
def test_timm_state_dict_names_map_mechanically(name):
    variables = traced_init(name).variables
    assert_timm_keys_map(variables, TIMM_KEYS[name], classifier="classifier")
    params = shapes_by_name(variables["params"])
    assert not any(p.endswith("bias") for p in params if "conv" in p and "/se/" not in p)
    depths = TIMM_STAGES[name[-2:]][0]
    blocks = {p.split("/")[1] for p in params if p.startswith("backbone/blocks_")}
    assert blocks == {f"blocks_{i}_{j}" for i, depth in enumerate(depths) for j in range(depth)}


def test_tf_flavour_differs_only_in_padding_and_eps():
    torch_style = create_model("efficientnet_b0", num_outputs=3).backbone
    tf_style = create_model("tf_efficientnet_b0", num_outputs=3).backbone
    assert (torch_style.padding, torch_style.bn_eps) == ("torch", 1e-5)
    assert (tf_style.padding, tf_style.bn_eps) == ("same", 1e-3)
    assert (tf_style.width, tf_style.depth) == (torch_style.width, torch_style.depth)


@pytest.mark.parametrize(
    "size, kernel, stride, expected",
    [(224, 3, 2, (0, 1)), (225, 3, 2, (1, 1)), (224, 5, 2, (1, 2)), (7, 5, 2, (2, 2)), (8, 3, 1, (1, 1)),
     (224, 1, 2, (0, 0)), (9, 5, 1, (2, 2))],
)
def test_same_padding_like_timm(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected


def _reference_conv(x: np.ndarray, w: np.ndarray, stride: int, groups: int) -> np.ndarray:
    """NumPy cross-correlation of an already padded NHWC input with an HWIO kernel."""
    kh, kw, cin_g, cout = w.shape
    n, h, wd, _ = x.shape
    out_h, out_w = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((n, out_h, out_w, cout), np.float64)
    per_group = cout // groups
    for o in range(cout):
        g = o // per_group
        xs = x[..., g * cin_g : (g + 1) * cin_g]
        for i in range(out_h):
            for j in range(out_w):
                patch = xs[:, i * stride : i * stride + kh, j * stride : j * stride + kw, :]
                out[:, i, j, o] = np.einsum("nhwc,hwc->n", patch, w[..., o])
    return out


@pytest.mark.parametrize("size", [8, 9])
@pytest.mark.parametrize("kernel, groups", [(3, 1), (5, 4)])
def test_tf_same_conv_matches_explicit_padding(size, kernel, groups):
    rng = np.random.default_rng(size + kernel)
    x = rng.normal(size=(2, size, size, 4)).astype(np.float32)
    w = rng.normal(size=(kernel, kernel, 4 // groups, 4)).astype(np.float32)
    conv = Conv2d(4, kernel, stride=2, padding="same", groups=groups)
    got = np.asarray(conv.apply({"params": {"kernel": w}}, jnp.asarray(x)))
    total = max((-(-size // 2) - 1) * 2 + kernel - size, 0)
    lo, hi = total // 2, total - total // 2  # TF: the odd pixel goes to the bottom/right
    padded = np.pad(x, ((0, 0), (lo, hi), (lo, hi), (0, 0)))
    np.testing.assert_allclose(got, _reference_conv(padded, w, 2, groups), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(pad_same(jnp.asarray(x), kernel, 2)), padded)
    torch_style = np.asarray(Conv2d(4, kernel, stride=2, groups=groups).apply({"params": {"kernel": w}}, x))
    assert torch_style.shape == got.shape
    if size % 2 == 0:  # asymmetric here: torch's symmetric padding gives different numbers
        assert not np.allclose(torch_style, got, atol=1e-3)


@pytest.fixture(scope="module")
def b0():
    model = create_model("efficientnet_b0", num_outputs=5)
    return model, random_variables(_init_shapes(model))


def test_bfloat16_runs_close_to_float32(b0):
    _, variables = b0
    outputs = []
    for dtype in ("float32", "bfloat16"):  # the same float32 variables serve either compute dtype
        model = create_model("efficientnet_b0", num_outputs=5, dtype=dtype)
        outputs.append(fast_jit_no_fusion(lambda v, x, model=model: model.apply(v, x, train=False)[0])(variables, _images()))
    assert all(o.dtype == jnp.float32 and np.isfinite(np.asarray(o)).all() for o in outputs)
    scale = float(np.abs(np.asarray(outputs[0])).max())
    np.testing.assert_allclose(outputs[1], outputs[0], atol=0.1 * scale)


