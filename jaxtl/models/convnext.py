"""ConvNeXt backbones as timm's `ConvNeXt`, with timm's parameter names and counts.

Variables, under timm's state-dict names ("nested" naming): `stem_0` (4x4 convolution, stride
4) and `stem_1` (LayerNorm over channels), `stages_i/downsample_0` (LayerNorm) and
`stages_i/downsample_1` (2x2 convolution, stride 2) for i > 0, `stages_i/blocks_j/{conv_dw
(7x7 depthwise), norm, mlp/fc1, mlp/fc2, gamma}` (the block's LayerScale), and `head/norm`, the
LayerNorm timm's `NormMlpClassifierHead` applies to the pooled features; timm's `head.fc` is the
classifier's `head/fc`.

Named features (jaxtl/models/taps.py): `stem`, `stage0` .. `stage3` (each stage's output, maps;
the last one is Grad-CAM's default), `norm` and `pre_logits` (the average-pooled last map after
`head/norm`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxtl.models.drop_path import block_rates, drop_path
from jaxtl.models.family import (
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
from jaxtl.models.taps import PRE_LOGITS, STEM, Features, tap

_init = nn.initializers.truncated_normal(0.02)  # timm's trunc_normal_(std=.02)
LAYER_SCALE_INIT = 1e-6  # timm's ls_init_value
FINAL_NORM = "norm"
ACTIVATIONS = {"gelu": functools.partial(nn.gelu, approximate=False),  # torch nn.GELU()
               "gelu_tanh": functools.partial(nn.gelu, approximate=True)}


def stage_name(i: int) -> str:
    return f"stage{i}"


def _layer_norm(eps: float, dtype: Dtype, name: str) -> nn.LayerNorm:
    return nn.LayerNorm(epsilon=eps, dtype=dtype, param_dtype=jnp.float32,
                        use_fast_variance=False, name=name)


@dataclasses.dataclass(frozen=True)
class ConvNeXtConfig:
    depths: Sequence[int]
    dims: Sequence[int]
    norm_eps: float = 1e-6
    act: str = "gelu"
    kernel_size: int = 7


class Block(nn.Module):
    """x + gamma * fc2(act(fc1(norm(conv_dw(x))))), with stochastic depth on the branch."""

    config: ConvNeXtConfig
    drop_path: float
    dtype: Dtype

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        c, dim = self.config, x.shape[-1]
        y = Conv2d(dim, c.kernel_size, groups=dim, use_bias=True, dtype=self.dtype,
                   kernel_init=_init, name="conv_dw")(x)
        y = _layer_norm(c.norm_eps, self.dtype, "norm")(y)
        y = MlpBlock(4 * dim, c.act, self.dtype, name="mlp")(y)
        gamma = self.param("gamma", nn.initializers.constant(LAYER_SCALE_INIT), (dim,))
        return x + drop_path(self, y * gamma.astype(y.dtype), self.drop_path, train)


class MlpBlock(nn.Module):
    hidden: int
    act: str
    dtype: Dtype

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        dense = functools.partial(nn.Dense, dtype=self.dtype, param_dtype=jnp.float32,
                                  kernel_init=_init)
        return dense(x.shape[-1], name="fc2")(ACTIVATIONS[self.act](dense(self.hidden,
                                                                           name="fc1")(x)))


class ConvNeXtStage(nn.Module):
    """timm's ConvNeXtStage: downsampling (stages after the first), then its blocks."""

    config: ConvNeXtConfig
    index: int
    rates: Sequence[float]
    dtype: Dtype
    remat: bool = False  # each block recomputed in the backward pass (same variables)

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        c = self.config
        if self.index > 0:
            x = _layer_norm(c.norm_eps, self.dtype, "downsample_0")(x)
            x = Conv2d(c.dims[self.index], 2, stride=2, padding=0, use_bias=True,
                       dtype=self.dtype, kernel_init=_init, name="downsample_1")(x)
        block = remat_block(Block) if self.remat else Block
        for j, rate in enumerate(self.rates):
            x = block(c, rate, self.dtype, name=f"blocks_{j}")(x, train)
        return x


class HeadNorm(nn.Module):
    """The LayerNorm of timm's `head` (`head.norm`), applied to the pooled features."""

    eps: float

    @nn.compact
    def __call__(self, pooled: jnp.ndarray) -> jnp.ndarray:
        return _layer_norm(self.eps, jnp.float32, "norm")(pooled)


class ConvNeXt(nn.Module):
    """Images (N, H, W, C) -> (pooled features (N, dims[-1]) float32, named features).
    `drop_path` is the stochastic-depth rate of the last block (timm's `drop_path_rate`)."""

    config: ConvNeXtConfig
    drop_path: float = 0.0
    dtype: Dtype = jnp.float32
    remat: bool = False  # each block recomputed in the backward pass (same variables)

    min_input_size = 32  # stride 4 stem and three stride-2 downsamplings, none padded

    @property
    def num_features(self) -> int:
        return self.config.dims[-1]

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> tuple[jnp.ndarray, Features]:
        c = self.config
        features: Features = {}
        if min(x.shape[1:3]) < self.min_input_size:
            raise ValueError(f"ConvNeXt needs NHWC images of at least {self.min_input_size}x"
                             f"{self.min_input_size} pixels, got shape {x.shape}")
        x = Conv2d(c.dims[0], 4, stride=4, padding=0, use_bias=True, dtype=self.dtype,
                   kernel_init=_init, name="stem_0")(x)
        x = tap(self, features, STEM, _layer_norm(c.norm_eps, self.dtype, "stem_1")(x))
        rates = block_rates(self.drop_path, sum(c.depths))
        start = 0
        for i, depth in enumerate(c.depths):
            x = ConvNeXtStage(c, i, rates[start:start + depth], self.dtype, self.remat,
                              name=f"stages_{i}")(x, train)
            x = tap(self, features, stage_name(i), x)
            start += depth
        pooled = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
        pooled = tap(self, features, FINAL_NORM, HeadNorm(c.norm_eps, name="head")(pooled))
        return tap(self, features, PRE_LOGITS, pooled), features


def stages(num_stages: int) -> tuple[Stage, ...]:
    """stem, stage0 .. stage3 (each with its downsampling), norm (timm's head.norm)."""
    return (Stage(STEM, any_of("stem_0", "stem_1")),
            *(Stage(stage_name(i), rf"stages_{i}/") for i in range(num_stages)),
            Stage(FINAL_NORM, any_of("head")))


def _architecture(config: ConvNeXtConfig, timm: TimmCheckpoint) -> Architecture:
    def factory(dtype: Dtype = jnp.float32, drop_path: float = 0.0,
                remat: bool = False) -> ConvNeXt:
        return ConvNeXt(config, drop_path=drop_path, dtype=dtype, remat=remat)

    return Architecture(factory, stages(len(config.depths)), timm,
                        gradcam_stage=stage_name(len(config.depths) - 1))


_timm = functools.partial(TimmCheckpoint, naming="nested", first_conv="stem.0",
                          classifier="head.fc", resolution=224)

ARCHITECTURES = {
    # timm's test_convnext: the family's tiny size, for tests and quick runs.
    "test_convnext": _architecture(
        ConvNeXtConfig((1, 2, 4, 2), (24, 32, 48, 64), norm_eps=1e-5, act="gelu_tanh"),
        _timm(resolution=160, tag="r160_in1k", mean=INCEPTION_MEAN, std=INCEPTION_STD)),
    "convnext_tiny": _architecture(ConvNeXtConfig((3, 3, 9, 3), (96, 192, 384, 768)),
                                   _timm(tag="in12k_ft_in1k")),
    "convnext_small": _architecture(ConvNeXtConfig((3, 3, 27, 3), (96, 192, 384, 768)),
                                    _timm(tag="in12k_ft_in1k", golden=False)),
    "convnext_base": _architecture(ConvNeXtConfig((3, 3, 27, 3), (128, 256, 512, 1024)),
                                   _timm(tag="fb_in22k_ft_in1k", golden=False)),
}
