"""UNets on ViT and ConvNeXt encoders: a ViT's skips are four evenly spaced blocks' patch grids,
resampled into a pyramid at strides 4, 8, 16, 32 (ViTDet's simple-pyramid operators, checked
against their formulas here); ConvNeXt's are its stage maps at the same strides. The tiny
training runs: tests/evaluators/test_segmentation_train.py."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import erf
from test_unet import traced

from jaxtl.models.unet import (
    PYRAMID_NORM_EPS,
    ViTPyramid,
    encoder_stages,
    is_plain,
    pyramid_blocks,
)


@pytest.mark.parametrize("arch,blocks", [
    ("test_vit", (0, 1, 2, 4)),  # 6 blocks, class token: the pyramid ends at block 4
    ("vit_base_patch16_224", (1, 4, 7, 10)),  # class token: 11 blocks reach the classifier
    ("vit_base_patch16_224_avg", (2, 5, 8, 11)),  # mean-pooled: UNETR's z3, z6, z9, z12
])
def test_vit_skips_are_four_evenly_spaced_blocks(arch, blocks):
    assert is_plain(arch)
    assert pyramid_blocks(arch) == tuple(f"block{i}" for i in blocks)
    assert [s.name for s in encoder_stages(arch)] == list(pyramid_blocks(arch))


def test_test_vit_unet_gives_a_pyramid_at_strides_4_to_32():
    logits, skips, variables = traced("test_vit", 64)
    assert logits == (2, 64, 64, 3)
    assert skips == [(2, 4, 4, 64)] * 4  # patch grids of 16 px patches, 64 channels
    pyramid = variables["params"]["head"]["pyramid"]
    assert pyramid["up4_0"]["kernel"].shape == (2, 2, 64, 32)
    assert pyramid["up4_1"]["kernel"].shape == (2, 2, 32, 16)
    assert pyramid["up2"]["kernel"].shape == (2, 2, 64, 32)
    levels = jax.eval_shape(lambda v, m: ViTPyramid().apply(v, m), {"params": pyramid},
                            [jax.ShapeDtypeStruct(s, jnp.float32) for s in skips])
    assert [level.shape for level in levels] == [(2, 16, 16, 16), (2, 8, 8, 32), (2, 4, 4, 64),
                                                 (2, 2, 2, 64)]
    assert "pyramid" not in variables["params"]["backbone"]  # new layers: the head's


def test_convnext_skips_are_its_stages_at_strides_4_to_32():
    assert not is_plain("test_convnext")
    logits, skips, variables = traced("test_convnext", 64)
    assert logits == (2, 64, 64, 3)
    assert [s[1] for s in skips] == [16, 8, 4, 2]  # stem and stage0 share 1/4: stage0 kept
    assert "pyramid" not in variables["params"]["head"]


def test_pyramid_operators_match_their_formulas():
    """2x2 stride-2 transposed convolutions: every cell spreads over its own 2x2 block through
    the kernel's taps (Flax's ConvTranspose convolves with the kernel as stored, so output
    offset (a, b) reads tap (1 - a, 1 - b)); LayerNorm + exact GELU between; 2x2 max pooling,
    an odd side padded at the end."""
    rng = np.random.default_rng(0)
    maps = [rng.normal(size=(1, 3, 3, 8)).astype(np.float32) for _ in range(4)]
    shapes = jax.eval_shape(lambda m: ViTPyramid().init(jax.random.key(0), m), maps)
    variables = jax.tree.map(lambda a: rng.normal(size=a.shape).astype(np.float32), shapes)
    fine, middle, same, coarse = (np.asarray(level) for level in
                                  jax.jit(ViTPyramid().apply)(variables, maps))
    p = jax.tree.map(np.asarray, variables["params"])

    def deconv(x, layer):
        out = np.zeros((x.shape[0] * 2, x.shape[1] * 2, layer["kernel"].shape[-1]))
        for i in range(x.shape[0]):
            for j in range(x.shape[1]):
                for a in range(2):
                    for b in range(2):
                        out[2 * i + a, 2 * j + b] = (x[i, j] @ layer["kernel"][1 - a, 1 - b]
                                                     + layer["bias"])
        return out

    hidden = deconv(maps[0][0], p["up4_0"])
    mean, var = hidden.mean(-1, keepdims=True), hidden.var(-1, keepdims=True)
    norm = p["up4_norm"]
    hidden = (hidden - mean) / np.sqrt(var + PYRAMID_NORM_EPS) * norm["scale"] + norm["bias"]
    hidden = 0.5 * hidden * (1 + erf(hidden / np.sqrt(2)))
    np.testing.assert_allclose(fine[0], deconv(hidden, p["up4_1"]), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(middle[0], deconv(maps[1][0], p["up2"]), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(same, maps[2])
    expected = np.array([[maps[3][0, 2 * i:2 * i + 2, 2 * j:2 * j + 2].max(axis=(0, 1))
                          for j in range(2)] for i in range(2)])
    np.testing.assert_array_equal(coarse[0], expected)
