"""Vision Transformers as timm's `VisionTransformer`, with timm's parameter names and counts.

Variables, under timm's state-dict names ("nested" naming, jaxtl.conversion.timm_layout):
`patch_embed/proj` (a patch x patch convolution, stride patch), `cls_token` (1, 1, D),
`reg_token` (1, R, D), `pos_embed` (1, L, D), `norm_pre`, `blocks_i/{norm1, attn/qkv, attn/proj,
ls1/gamma, norm2, mlp/fc1, mlp/fc2 (SwiGLU: mlp/fc1_g, mlp/fc1_x, mlp/fc2), ls2/gamma}`, `norm`
or `fc_norm`; timm's `head` is the classifier's `head/fc`.

Position embeddings are stored on the grid of the architecture's `img_size` and resampled to
the input's patch grid in every forward pass, as timm's `dynamic_img_size=True` does: bicubic
with antialiasing (`jax.image.resize`, the kernel of torch's antialiased bicubic that timm's
`resample_abs_pos_embed` calls), prefix tokens (class, registers) left as they are. So any
`data.resolution` runs on the same variables; an image whose side is no multiple of the patch
size is padded with zeros at the bottom and right to the next multiple, as timm's
`dynamic_img_pad=True`. `no_embed_class` (DINOv2) adds the position
embeddings to the patches only, before the class and register tokens are put in front.
`pos_interp="dinov2"` resamples instead as DINOv2's own code and Hugging Face's `Dinov2Model`
(`interpolate_pos_encoding`, transformers 5) do: torch's plain bicubic (`F.interpolate(
mode="bicubic", align_corners=False)`, Keys' cubic with a = -0.75, edge pixels repeated, no
antialiasing) to the patch grid. Away from the pretraining grid the two differ (most when
shrinking: RAD-DINO's 37 x 37 grid to 16 x 16 at 224 px), so the architectures for DINOv2
weights without registers (`vit_base_patch14_dinov2`, RAD-DINO) use it.

Named features (jaxtl/models/taps.py): `stem` (the patch grid after the position embeddings),
`block<i>` (the token grid after block i: class and register tokens removed, reshaped to
(N, h, w, D)), `norm` and `pre_logits` (the pooled features after the final norm: the class
token, or the patch tokens' mean with `global_pool="avg"` followed by `fc_norm`, as MAE's and
RETFound's fine-tuning). Grad-CAM explains the last block's grid by default where the patch
tokens are pooled; where the class token is, the patch tokens after the last block never reach
the logits (zero gradient), so the default is the grid before the last block (the last block's
input, as pytorch-grad-cam's `blocks[-1].norm1` target on timm's ViTs) and the last block's
feature is the class token it leaves (N, D), the part of its output the head reads.

With `attention_features=True` (attention rollout, jaxtl/explain/rollout.py, asks for it) the
backbone also returns `attention<i>` (`taps.attention(i)`): block i's attention weights
(N, heads, T, T) over all T tokens (class and register tokens first, then the patches in
row-major order), softmax rows in the compute dtype. Off by default, so a train step never
carries them.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxtl.models.drop_path import block_rates, drop_path
from jaxtl.models.family import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    INCEPTION_MEAN,
    INCEPTION_STD,
    Architecture,
    Stage,
    TimmCheckpoint,
    any_of,
)
from jaxtl.models.layers import Dtype
from jaxtl.models.remat import remat_block
from jaxtl.models.std_layers import Conv2d
from jaxtl.models.taps import PRE_LOGITS, STEM, Features, attention, tap

LAYER_NORM_EPS = 1e-6  # timm's ViT: partial(nn.LayerNorm, eps=1e-6)
STEM_MODULES = ("patch_embed", "cls_token", "reg_token", "pos_embed", "norm_pre")
# timm's `VisionTransformer.no_weight_decay()` (its dist_token aside): left out of weight decay
# with the 1-D parameters (jaxtl.optim.decay_mask)
NO_WEIGHT_DECAY = ("pos_embed", "cls_token", "reg_token")
FINAL_NORM = "norm"  # the stage and feature holding `norm` / `fc_norm`

_linear_init = nn.initializers.truncated_normal(0.02)  # timm's trunc_normal_(std=.02)
_token_init = nn.initializers.normal(1e-6)  # timm: cls_token / reg_token normal_(std=1e-6)


def block_name(i: int) -> str:
    return f"block{i}"


def _dense(features: int, dtype: Dtype, name: str, use_bias: bool = True) -> nn.Dense:
    return nn.Dense(features, use_bias=use_bias, dtype=dtype, param_dtype=jnp.float32,
                    kernel_init=_linear_init, name=name)


def _layer_norm(dtype: Dtype, name: str) -> nn.LayerNorm:
    return nn.LayerNorm(epsilon=LAYER_NORM_EPS, dtype=dtype, param_dtype=jnp.float32,
                        use_fast_variance=False, name=name)


def gelu(x: jnp.ndarray) -> jnp.ndarray:
    """torch's nn.GELU(): the exact erf form, not the tanh approximation."""
    return nn.gelu(x, approximate=False)


def _square_grid(pos: jnp.ndarray, grid: tuple[int, int]) -> jnp.ndarray | None:
    """(1, h*w, D) position embeddings as a float32 (h, h, D) square, or None when that square
    is `grid` already (nothing to resample)."""
    side = round(pos.shape[1] ** 0.5)
    if side * side != pos.shape[1]:
        raise ValueError(f"{pos.shape[1]} position embeddings are no square grid")
    if (side, side) == tuple(grid):
        return None
    return pos.reshape(side, side, -1).astype(jnp.float32)


def resample_positions(pos: jnp.ndarray, grid: tuple[int, int]) -> jnp.ndarray:
    """(1, h*w, D) position embeddings on a square grid -> (1, grid[0]*grid[1], D), bicubic with
    antialiasing as timm's `resample_abs_pos_embed` (torch `F.interpolate(mode="bicubic",
    antialias=True)`), in float32."""
    square = _square_grid(pos, grid)
    if square is None:
        return pos
    resized = jax.image.resize(square, (*grid, square.shape[-1]), "bicubic", antialias=True)
    return resized.reshape(1, grid[0] * grid[1], -1)


def _torch_bicubic_1d(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of torch's `F.interpolate(mode="bicubic", align_corners=False)`
    without antialiasing: source x = (i + 0.5) * n_in / n_out - 0.5, four taps at
    floor(x) - 1 .. floor(x) + 2 weighted by Keys' cubic with a = -0.75, indices clamped to the
    grid (torch's `upsample_bicubic2d`)."""
    a = -0.75

    def cubic(t: float) -> float:
        t = abs(t)
        if t <= 1:
            return ((a + 2) * t - (a + 3)) * t * t + 1
        if t < 2:
            return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
        return 0.0

    weights = np.zeros((n_out, n_in))
    for i in range(n_out):
        x = (i + 0.5) * n_in / n_out - 0.5
        left = math.floor(x)
        for pixel in range(left - 1, left + 3):
            weights[i, min(max(pixel, 0), n_in - 1)] += cubic(x - pixel)
    return weights


def resample_positions_dinov2(pos: jnp.ndarray, grid: tuple[int, int]) -> jnp.ndarray:
    """As `resample_positions`, with DINOv2's / Hugging Face's plain bicubic (module doc)."""
    square = _square_grid(pos, grid)
    if square is None:
        return pos
    side = square.shape[0]
    rows = jnp.asarray(_torch_bicubic_1d(side, grid[0]), jnp.float32)
    cols = jnp.asarray(_torch_bicubic_1d(side, grid[1]), jnp.float32)
    resized = jnp.einsum("ai,bj,ijc->abc", rows, cols, square,
                         precision=jax.lax.Precision.HIGHEST)
    return resized.reshape(1, grid[0] * grid[1], -1)


POSITION_RESAMPLERS = {"timm": resample_positions, "dinov2": resample_positions_dinov2}


class LayerScale(nn.Module):
    """timm's LayerScale: x * gamma, gamma (D,) starting at `init_values`."""

    init_values: float

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        gamma = self.param("gamma", nn.initializers.constant(self.init_values), (x.shape[-1],))
        return x * gamma.astype(x.dtype)


class Attention(nn.Module):
    num_heads: int
    qkv_bias: bool
    dtype: Dtype

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        """(output (N, T, D), attention weights (N, heads, T queries, T keys))."""
        n, t, d = x.shape
        head_dim = d // self.num_heads
        qkv = _dense(3 * d, self.dtype, "qkv", self.qkv_bias)(x)
        q, k, v = jnp.moveaxis(qkv.reshape(n, t, 3, self.num_heads, head_dim), 2, 0)
        logits = jnp.einsum("nqhc,nkhc->nhqk", q * jnp.asarray(head_dim**-0.5, q.dtype), k)
        weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(self.dtype)
        out = jnp.einsum("nhqk,nkhc->nqhc", weights, v).reshape(n, t, d)
        return _dense(d, self.dtype, "proj")(out), weights


class Mlp(nn.Module):
    hidden: int
    swiglu: bool
    dtype: Dtype

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        if self.swiglu:  # timm's SwiGLU: silu(fc1_g(x)) * fc1_x(x)
            h = nn.silu(_dense(self.hidden, self.dtype, "fc1_g")(x)) * _dense(
                self.hidden, self.dtype, "fc1_x")(x)
        else:
            h = gelu(_dense(self.hidden, self.dtype, "fc1")(x))
        return _dense(x.shape[-1], self.dtype, "fc2")(h)


class Block(nn.Module):
    """Pre-norm transformer block: x + ls1(attn(norm1(x))), then x + ls2(mlp(norm2(x)))."""

    num_heads: int
    mlp_hidden: int
    qkv_bias: bool
    init_values: float | None
    swiglu: bool
    drop_path: float
    dtype: Dtype
    with_attention: bool = False  # return (output, attention weights) instead of the output

    def _scaled(self, y: jnp.ndarray, name: str) -> jnp.ndarray:
        return LayerScale(self.init_values, name=name)(y) if self.init_values else y

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool
                 ) -> jnp.ndarray | tuple[jnp.ndarray, jnp.ndarray]:
        y, weights = Attention(self.num_heads, self.qkv_bias, self.dtype, name="attn")(
            _layer_norm(self.dtype, "norm1")(x))
        x = x + drop_path(self, self._scaled(y, "ls1"), self.drop_path, train)
        y = Mlp(self.mlp_hidden, self.swiglu, self.dtype, name="mlp")(
            _layer_norm(self.dtype, "norm2")(x))
        x = x + drop_path(self, self._scaled(y, "ls2"), self.drop_path, train)
        return (x, weights) if self.with_attention else x


@dataclasses.dataclass(frozen=True)
class ViTConfig:
    """The timm `VisionTransformer` arguments an architecture sets (timm's names)."""

    patch_size: int
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    img_size: int = 224  # the grid `pos_embed` is stored on
    class_token: bool = True
    reg_tokens: int = 0
    no_embed_class: bool = False
    global_pool: str = "token"  # "token" or "avg"
    fc_norm: bool | None = None  # None: as timm, with global_pool "avg"
    pre_norm: bool = False
    init_values: float | None = None  # LayerScale
    qkv_bias: bool = True
    swiglu: bool = False
    pos_interp: str = "timm"  # how pos_embed is resampled: POSITION_RESAMPLERS (module doc)

    def __post_init__(self):
        if self.pos_interp not in POSITION_RESAMPLERS:
            raise ValueError(f"pos_interp must be one of {sorted(POSITION_RESAMPLERS)}, got "
                             f"{self.pos_interp!r}")
        if self.global_pool not in ("token", "avg"):
            raise ValueError(f"global_pool must be 'token' or 'avg', got {self.global_pool!r}")
        if self.global_pool == "token" and not self.class_token:
            raise ValueError("global_pool 'token' needs the class token")
        if self.depth < 2:
            raise ValueError("a ViT here has at least two blocks (Grad-CAM's default feature)")

    @property
    def use_fc_norm(self) -> bool:
        return self.global_pool == "avg" if self.fc_norm is None else self.fc_norm

    @property
    def gradcam_block(self) -> int:
        """The last block whose patch tokens reach the pooled features (module doc)."""
        return self.depth - 1 if self.global_pool == "avg" else self.depth - 2

    @property
    def num_prefix_tokens(self) -> int:
        return int(self.class_token) + self.reg_tokens

    @property
    def mlp_hidden(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)


class VisionTransformer(nn.Module):
    """Images (N, H, W, C) -> (pooled features (N, D) float32, named features); see the module
    doc. `drop_path` is the stochastic-depth rate of the last block (timm's `drop_path_rate`)."""

    config: ViTConfig
    drop_path: float = 0.0
    dtype: Dtype = jnp.float32
    remat: bool = False  # each block recomputed in the backward pass (same variables)
    attention_features: bool = False  # also return every block's attention weights (doc)

    @property
    def min_input_size(self) -> int:
        return self.config.patch_size

    @property
    def num_features(self) -> int:
        return self.config.embed_dim

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> tuple[jnp.ndarray, Features]:
        c = self.config
        features: Features = {}
        p = c.patch_size
        if min(x.shape[1:3]) < p:
            raise ValueError(f"a ViT with {p}-pixel patches needs NHWC images of at least "
                             f"{p}x{p} pixels, got shape {x.shape}")
        x = PatchEmbed(c.embed_dim, p, self.dtype, name="patch_embed")(x)
        n, h, w, d = x.shape
        tokens = x.reshape(n, h * w, d)
        grid = c.img_size // p
        length = grid * grid + (0 if c.no_embed_class else c.num_prefix_tokens)
        pos = self.param("pos_embed", _linear_init, (1, length, d))
        prefix = []
        if c.class_token:
            prefix.append(self.param("cls_token", _token_init, (1, 1, d)))
        if c.reg_tokens:
            prefix.append(self.param("reg_token", _token_init, (1, c.reg_tokens, d)))
        prefix = [jnp.broadcast_to(t, (n, *t.shape[1:])).astype(self.dtype) for t in prefix]
        resample = POSITION_RESAMPLERS[c.pos_interp]
        if c.no_embed_class:
            tokens = tokens + resample(pos, (h, w)).astype(self.dtype)
            tokens = jnp.concatenate([*prefix, tokens], axis=1)
        else:
            front = c.num_prefix_tokens
            pos = jnp.concatenate([pos[:, :front], resample(pos[:, front:], (h, w))], axis=1)
            tokens = jnp.concatenate([*prefix, tokens], axis=1) + pos.astype(self.dtype)
        if c.pre_norm:
            tokens = _layer_norm(self.dtype, "norm_pre")(tokens)
        tap(self, features, STEM, self._grid(tokens, h, w))
        rates = block_rates(self.drop_path, c.depth)
        block = remat_block(Block) if self.remat else Block
        for i in range(c.depth):
            tokens = block(c.num_heads, c.mlp_hidden, c.qkv_bias, c.init_values, c.swiglu,
                           rates[i], self.dtype, self.attention_features,
                           name=f"blocks_{i}")(tokens, train)
            if self.attention_features:
                tokens, weights = tokens
                tap(self, features, attention(i), weights)
            if i <= c.gradcam_block:
                grid_tokens = tap(self, features, block_name(i), self._grid(tokens, h, w))
                tokens = jnp.concatenate([tokens[:, :c.num_prefix_tokens],
                                          grid_tokens.reshape(n, h * w, d)], axis=1)
            else:
                class_token = tap(self, features, block_name(i), tokens[:, 0])
                tokens = jnp.concatenate([class_token[:, None], tokens[:, 1:]], axis=1)
        if not c.use_fc_norm:
            tokens = _layer_norm(self.dtype, "norm")(tokens)
        if c.global_pool == "avg":
            pooled = jnp.mean(tokens[:, c.num_prefix_tokens:].astype(jnp.float32), axis=1)
        else:
            pooled = tokens[:, 0].astype(jnp.float32)
        if c.use_fc_norm:
            pooled = _layer_norm(jnp.float32, "fc_norm")(pooled)
        pooled = tap(self, features, FINAL_NORM, pooled)
        pooled = tap(self, features, PRE_LOGITS, pooled.astype(jnp.float32))
        return pooled, features

    def _grid(self, tokens: jnp.ndarray, h: int, w: int) -> jnp.ndarray:
        """The patch tokens as a map (N, h, w, D): prefix tokens removed."""
        patch_tokens = tokens[:, self.config.num_prefix_tokens:]
        return patch_tokens.reshape(tokens.shape[0], h, w, tokens.shape[-1])


class PatchEmbed(nn.Module):
    """timm's PatchEmbed with `dynamic_img_pad=True`: the image padded with zeros at the bottom
    and right to a multiple of the patch size, then `proj`, a patch x patch convolution with
    stride patch."""

    embed_dim: int
    patch_size: int
    dtype: Dtype

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        p = self.patch_size
        x = jnp.pad(x, ((0, 0), (0, -x.shape[1] % p), (0, -x.shape[2] % p), (0, 0)))
        return Conv2d(self.embed_dim, self.patch_size, stride=self.patch_size, padding=0,
                      use_bias=True, dtype=self.dtype,
                      kernel_init=nn.initializers.lecun_normal(), name="proj")(x)


def stages(depth: int) -> tuple[Stage, ...]:
    """stem (patch embedding, tokens, position embeddings), block0 .. block<depth-1>, norm."""
    return (Stage(STEM, any_of(*STEM_MODULES)),
            *(Stage(block_name(i), rf"blocks_{i}/") for i in range(depth)),
            Stage(FINAL_NORM, any_of("norm", "fc_norm")))


def _architecture(config: ViTConfig, timm: TimmCheckpoint) -> Architecture:
    def factory(dtype: Dtype = jnp.float32, drop_path: float = 0.0,
                remat: bool = False) -> VisionTransformer:
        return VisionTransformer(config, drop_path=drop_path, dtype=dtype, remat=remat)

    return Architecture(factory, stages(config.depth), timm,
                        gradcam_stage=block_name(config.gradcam_block))


# timm's ViT as jaxtl's: position embeddings resampled to any input, sides padded to patches.
_DYNAMIC = (("dynamic_img_size", True), ("dynamic_img_pad", True))
_timm = functools.partial(TimmCheckpoint, naming="nested", first_conv="patch_embed.proj",
                          classifier="head", resolution=224, mean=INCEPTION_MEAN,
                          std=INCEPTION_STD, timm_kwargs=_DYNAMIC)
_TINY, _SMALL = dict(embed_dim=192, num_heads=3), dict(embed_dim=384, num_heads=6)
_BASE, _LARGE = dict(embed_dim=768, num_heads=12), dict(embed_dim=1024, num_heads=16)
# MAE's and RETFound's fine-tuning layout: the patch tokens' mean, then fc_norm (no final norm).
_AVG = (("global_pool", "avg"),)
_DINOV2 = dict(patch_size=14, img_size=518, init_values=1e-5, reg_tokens=4, no_embed_class=True)
# DINOv2 without registers (Meta's release, RAD-DINO): the class token has a position
# embedding, and the grid is resampled as DINOv2's own code does (module doc). timm names
# the same layout; its `dynamic_img_size` resampling differs away from 518 px, so no golden
# timm rows: these are checked against Hugging Face's Dinov2Model
# (tests/tools/test_library_converters.py).
_DINOV2_NO_REG = dict(patch_size=14, init_values=1e-5, pos_interp="dinov2")

ARCHITECTURES = {
    # timm's test_vit: the family's tiny size, for tests and quick runs.
    "test_vit": _architecture(ViTConfig(16, 64, 6, 2, mlp_ratio=3, img_size=160),
                              _timm(resolution=160, tag="r160_in1k")),
    "vit_tiny_patch16_224": _architecture(ViTConfig(16, depth=12, **_TINY),
                                          _timm(tag="augreg_in21k_ft_in1k", golden=False)),
    "vit_small_patch16_224": _architecture(ViTConfig(16, depth=12, **_SMALL),
                                           _timm(tag="augreg_in21k_ft_in1k")),
    "vit_base_patch16_224": _architecture(ViTConfig(16, depth=12, **_BASE),
                                          _timm(tag="augreg2_in21k_ft_in1k", golden=False)),
    "vit_large_patch16_224": _architecture(ViTConfig(16, depth=24, **_LARGE),
                                           _timm(tag="augreg_in21k_ft_in1k", golden=False)),
    "vit_base_patch16_224_avg": _architecture(
        ViTConfig(16, depth=12, global_pool="avg", **_BASE),
        _timm(tag="augreg2_in21k_ft_in1k", timm_name="vit_base_patch16_224",
              timm_kwargs=(*_DYNAMIC, *_AVG))),
    "vit_large_patch16_224_avg": _architecture(
        ViTConfig(16, depth=24, global_pool="avg", **_LARGE),
        _timm(tag="augreg_in21k_ft_in1k", timm_name="vit_large_patch16_224",
              timm_kwargs=(*_DYNAMIC, *_AVG), golden=False)),
    # UNI's layout (pathology; timm's vit_large_patch16_224 with LayerScale, as its model card
    # creates it): class token, final norm, LayerScale starting at 1e-5.
    "vit_large_patch16_224_ls": _architecture(
        ViTConfig(16, depth=24, init_values=1e-5, **_LARGE),
        _timm(tag="augreg_in21k_ft_in1k", timm_name="vit_large_patch16_224",
              timm_kwargs=(*_DYNAMIC, ("init_values", 1e-5)))),
    "vit_small_patch14_reg4_dinov2": _architecture(
        ViTConfig(depth=12, **_SMALL, **_DINOV2),
        _timm(resolution=518, tag="lvd142m", mean=IMAGENET_MEAN, std=IMAGENET_STD)),
    # RETFound-Green's layout: the same network with its position embeddings stored on the
    # 28x28 grid of 392 px (timm's img_size=392, as its repository creates it).
    "vit_small_patch14_reg4_dinov2_392": _architecture(
        ViTConfig(depth=12, **_SMALL, **{**_DINOV2, "img_size": 392}),
        _timm(resolution=392, tag="lvd142m", mean=IMAGENET_MEAN, std=IMAGENET_STD,
              timm_name="vit_small_patch14_reg4_dinov2",
              timm_kwargs=(*_DYNAMIC, ("img_size", 392)))),
    "vit_base_patch14_reg4_dinov2": _architecture(
        ViTConfig(depth=12, **_BASE, **_DINOV2),
        _timm(resolution=518, tag="lvd142m", mean=IMAGENET_MEAN, std=IMAGENET_STD,
              golden=False)),
    "vit_base_patch14_dinov2": _architecture(
        ViTConfig(depth=12, img_size=518, **_BASE, **_DINOV2_NO_REG),
        _timm(resolution=518, tag="lvd142m", mean=IMAGENET_MEAN, std=IMAGENET_STD,
              golden=False)),
    # A tiny DINOv2 without registers (timm's vit_base_patch14_dinov2 at test size), for tests.
    "test_vit_patch14_dinov2": _architecture(
        ViTConfig(depth=6, embed_dim=64, num_heads=2, mlp_ratio=3, img_size=112,
                  **_DINOV2_NO_REG),
        _timm(resolution=112, tag="lvd142m", mean=IMAGENET_MEAN, std=IMAGENET_STD,
              timm_name="vit_base_patch14_dinov2", golden=False,
              timm_kwargs=(*_DYNAMIC, ("embed_dim", 64), ("depth", 6), ("num_heads", 2),
                           ("mlp_ratio", 3), ("img_size", 112)))),
}
