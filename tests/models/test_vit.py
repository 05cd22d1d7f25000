"""The ViT family: timm's parameter counts, position-embedding resampling against a slow
definition of torch's antialiased bicubic, the Grad-CAM default of class-token models, minimum
input size and stochastic depth. Parity of the logits with timm: tests/tools/test_convert_weights.py.
A tiny ViT trained from a converted checkpoint, killed, resumed and explained:
tests/training/test_converted_families.py."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from zoo_helpers import fast_jit, images, init_shapes, random_variables

from jaxtl.models import create_model, gradcam_feature, stages_of
from jaxtl.models.drop_path import block_rates, drop_path
from jaxtl.models.vit import ViTConfig, resample_positions, resample_positions_dinov2

# timm 1.0.31: sum(p.numel() for p in timm.create_model(name).parameters()), 1000 classes.
TIMM_PARAMETERS = {"test_vit": 371_240, "vit_tiny_patch16_224": 5_717_416,
                   "vit_small_patch16_224": 22_050_664, "vit_base_patch16_224": 86_567_656,
                   "vit_large_patch16_224": 304_326_632,
                   # timm's vit_large_patch16_224(init_values=1e-5): UNI's layout
                   "vit_large_patch16_224_ls": 304_375_784,
                   # timm's default for it has no classifier (num_classes=0): 22_057_344
                   "vit_small_patch14_reg4_dinov2": 22_057_344 + 384 * 1000 + 1000,
                   # the same with img_size=392 (RETFound-Green): 28x28 position embeddings
                   "vit_small_patch14_reg4_dinov2_392": 22_057_344 + 384 * 1000 + 1000
                   - (37 * 37 - 28 * 28) * 384,
                   "vit_base_patch14_dinov2": 87_348_712,
                   # timm's vit_base_patch14_dinov2(embed_dim=64, depth=6, num_heads=2,
                   # mlp_ratio=3, img_size=112)
                   "test_vit_patch14_dinov2": 358_184}


def parameter_count(arch: str) -> int:
    model = create_model(arch, num_outputs=1000)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)),
                                               train=False))
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(shapes["params"]))


@pytest.mark.parametrize("arch", sorted(TIMM_PARAMETERS))
def test_parameter_counts_are_timms(arch):
    assert parameter_count(arch) == TIMM_PARAMETERS[arch]


def test_avg_pool_layout_swaps_the_final_norm_for_fc_norm():
    """MAE/RETFound: fc_norm after the mean, no final norm; the same count as the token model."""
    assert parameter_count("vit_base_patch16_224_avg") == TIMM_PARAMETERS["vit_base_patch16_224"]
    model = create_model("vit_base_patch16_224_avg", num_outputs=10)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)),
                                               train=False))
    assert "fc_norm" in shapes["params"]["backbone"] and "norm" not in shapes["params"]["backbone"]


def _aa_bicubic_1d(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of torch's F.interpolate(mode="bicubic", antialias=True,
    align_corners=False), written out from its definition (PIL's resampling): Keys' cubic with
    a = -0.5, stretched by the scale when shrinking, over the pixels inside the image,
    normalised to sum 1."""
    scale = n_in / n_out
    stretch = max(scale, 1.0)

    def cubic(t: float) -> float:
        t, a = abs(t), -0.5
        if t < 1:
            return (a + 2) * t**3 - (a + 3) * t**2 + 1
        if t < 2:
            return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
        return 0.0

    weights = np.zeros((n_out, n_in))
    for i in range(n_out):
        center = (i + 0.5) * scale
        for j in range(n_in):
            weights[i, j] = cubic((j + 0.5 - center) / stretch)
        weights[i] /= weights[i].sum()
    return weights


@pytest.mark.parametrize("old, new", [((4, 4), (3, 3)), ((4, 4), (6, 5)), ((5, 5), (5, 5))])
def test_position_embeddings_resample_as_torchs_antialiased_bicubic(old, new):
    rng = np.random.default_rng(0)
    grid = rng.standard_normal((*old, 3))
    want = np.einsum("ai,bj,ijc->abc", _aa_bicubic_1d(old[0], new[0]),
                     _aa_bicubic_1d(old[1], new[1]), grid)
    got = resample_positions(jnp.asarray(grid.reshape(1, -1, 3), jnp.float32), new)
    np.testing.assert_allclose(np.asarray(got).reshape(*new, 3), want, rtol=1e-5, atol=1e-5)


def _torch_bicubic_slow(grid: np.ndarray, new: tuple[int, int]) -> np.ndarray:
    """torch's F.interpolate(mode="bicubic", align_corners=False) without antialiasing, pixel
    by pixel from its definition (aten's upsample_bicubic2d): source coordinate
    (i + 0.5) * in / out - 0.5 on each axis, the 4 x 4 pixels around it (indices clamped to the
    image) weighted by Keys' cubic with a = -0.75 along each axis."""
    a = -0.75

    def cubic(t: float) -> float:
        t = abs(t)
        if t <= 1:
            return (a + 2) * t**3 - (a + 3) * t**2 + 1
        return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a if t < 2 else 0.0

    h, w, _ = grid.shape
    out = np.zeros((*new, grid.shape[-1]))
    for i in range(new[0]):
        for j in range(new[1]):
            y, x = (i + 0.5) * h / new[0] - 0.5, (j + 0.5) * w / new[1] - 0.5
            for dy in range(-1, 3):
                for dx in range(-1, 3):
                    row, col = math.floor(y) + dy, math.floor(x) + dx
                    weight = cubic(y - row) * cubic(x - col)
                    out[i, j] += weight * grid[min(max(row, 0), h - 1), min(max(col, 0), w - 1)]
    return out


@pytest.mark.parametrize("old, new", [((5, 5), (3, 3)), ((4, 4), (7, 6)), ((5, 5), (5, 5))])
def test_dinov2_position_embeddings_resample_as_torchs_plain_bicubic(old, new):
    """pos_interp="dinov2": as Hugging Face's Dinov2Model (checked end to end against it in
    tests/tools/test_library_converters.py), not timm's antialiased resampling."""
    rng = np.random.default_rng(1)
    grid = rng.standard_normal((*old, 3))
    got = resample_positions_dinov2(jnp.asarray(grid.reshape(1, -1, 3), jnp.float32), new)
    np.testing.assert_allclose(np.asarray(got).reshape(*new, 3), _torch_bicubic_slow(grid, new),
                               rtol=1e-5, atol=1e-5)
    if old != new:
        timm = resample_positions(jnp.asarray(grid.reshape(1, -1, 3), jnp.float32), new)
        assert np.abs(np.asarray(timm) - np.asarray(got)).max() > 1e-2


def test_config_refuses_an_unknown_position_resampling():
    with pytest.raises(ValueError, match="pos_interp must be one of"):
        ViTConfig(14, 64, 2, 2, pos_interp="bilinear")


def test_class_token_models_explain_the_grid_before_the_last_block():
    """The class token reads the patch tokens only through the last block's attention: the
    gradient of the logits with respect to the last block's patch tokens is zero, so Grad-CAM's
    default is the grid the last block reads (block4 of test_vit's six), and the last block's
    own feature is the class token it leaves."""
    assert gradcam_feature("test_vit") == "block4"
    assert gradcam_feature("vit_base_patch16_224_avg") == "block11"  # patch tokens pooled
    assert [s.name for s in stages_of("test_vit")] == ["stem", *(f"block{i}" for i in range(6)),
                                                        "norm"]
    model = create_model("test_vit", num_outputs=3)
    variables = random_variables(init_shapes(model, 32), seed=1)
    x = images(2, 32, seed=2)
    _, out = fast_jit(lambda v, x: model.apply(v, x, train=False))(variables, x)
    assert out["block4"].shape == (2, 2, 2, 64) and out["block5"].shape == (2, 64)
    np.testing.assert_array_equal(out["norm"], out["pre_logits"])


@pytest.mark.parametrize("arch, patch", [("test_vit", 16), ("vit_small_patch14_reg4_dinov2", 14)])
def test_smaller_images_than_a_patch_are_refused(arch, patch):
    model = create_model(arch, num_outputs=2)
    with pytest.raises(ValueError, match=f"at least {patch}x{patch} pixels"):
        jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, patch - 1, 64, 3)),
                                          train=False))
    jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, patch, patch, 3)),
                                      train=False))


def test_config_refuses_token_pooling_without_a_class_token():
    with pytest.raises(ValueError, match="needs the class token"):
        ViTConfig(16, 64, 2, 2, class_token=False)


def test_drop_path_rates_and_per_example_masks():
    assert block_rates(0.1, 1) == [0.0]
    np.testing.assert_allclose(block_rates(0.3, 4), np.linspace(0, 0.3, 4))
    import flax.linen as nn

    class Branch(nn.Module):
        rate: float

        @nn.compact
        def __call__(self, x, train):
            return drop_path(self, x, self.rate, train)

    x = jnp.ones((4000, 3, 2))
    dropped = Branch(0.25).apply({}, x, True, rngs={"dropout": jax.random.key(0)})
    kept = np.asarray(dropped[:, 0, 0]) != 0
    # each example whole: all zero or all 1 / 0.75
    np.testing.assert_allclose(np.asarray(dropped), np.broadcast_to(
        np.where(kept[:, None, None], 1 / 0.75, 0.0), x.shape), rtol=1e-6)
    assert abs(kept.mean() - 0.75) < 0.03
    np.testing.assert_array_equal(Branch(0.25).apply({}, x, False), x)  # evaluation: identity


def test_drop_path_is_a_config_error_for_families_without_it():
    from jaxtl.core.errors import ConfigError

    create_model("test_vit", num_outputs=2, drop_path=0.1)
    with pytest.raises(ConfigError, match="resnet18 has no stochastic depth"):
        create_model("resnet18", num_outputs=2, drop_path=0.1)
