"""EfficientNet-B0..B5 with timm's layout: `efficientnet_b*` and TF-ported `tf_efficientnet_b*`.

Name mapping from a timm state dict: a numeric key part (an `nn.Sequential` index) joins
the part before it with "_", every other "." starts a nested module, e.g.
`blocks.1.0.se.conv_reduce.weight` -> `blocks_1_0/se/conv_reduce/kernel`. Leaves: conv
`weight` (OIHW) -> `kernel` (HWIO), `bias` -> `bias`; BN `weight`/`bias` -> params
`scale`/`bias`, `running_mean`/`running_var` -> batch_stats `mean`/`var`. timm's
`classifier` is the head's `fc` (added by `create_model`).

The two flavours differ only in numerics: `efficientnet_b*` pads symmetrically like
torch (k // 2) with BN eps 1e-5; `tf_efficientnet_b*` pads TF "SAME" (one pixel more at
the bottom/right for stride 2 on even inputs) with BN eps 1e-3.

Not implemented: drop-path (stochastic depth, timm's `drop_path_rate`, 0 by default), so
training is as timm with `drop_path_rate=0`; the classifier dropout is the head's `dropout`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import flax.linen as nn
import jax.numpy as jnp

from jaxtl.models.family import (
    INCEPTION_MEAN,
    INCEPTION_STD,
    Architecture,
    Stage,
    TimmCheckpoint,
    any_of,
)
from jaxtl.models.layers import Dtype
from jaxtl.models.std_layers import (
    Conv2d,
    Padding,
    batch_norm,
    global_avg_pool,
    make_divisible,
    normal_fan_out,
)
from jaxtl.models.taps import PRE_LOGITS, STEM, Features, activated, tap

# (block type, repeats, dw kernel, stride, expansion, out channels) per stage; SE ratio 0.25.
_ARCH = (
    ("ds", 1, 3, 1, 1, 16),
    ("ir", 2, 3, 2, 6, 24),
    ("ir", 2, 5, 2, 6, 40),
    ("ir", 3, 3, 2, 6, 80),
    ("ir", 3, 5, 1, 6, 112),
    ("ir", 4, 5, 2, 6, 192),
    ("ir", 1, 3, 1, 6, 320),
)
_SE_RATIO = 0.25


@dataclass(frozen=True)
class BlockSpec:
    kind: str  # "ds": depthwise-separable, "ir": inverted residual (MBConv)
    in_chs: int
    out_chs: int
    kernel_size: int
    stride: int
    mid_chs: int
    se_chs: int


def round_channels(channels: int, multiplier: float) -> int:
    """timm `round_channels` with divisor 8."""
    return make_divisible(channels * multiplier, 8)


def block_specs(width: float, depth: float) -> list[list[BlockSpec]]:
    """timm's decoded EfficientNet arch: depth ceil-scaled per stage, widths rounded to 8."""
    in_chs = round_channels(32, width)
    stages = []
    for kind, repeats, kernel, stride, exp, out in _ARCH:
        out_chs = round_channels(out, width)
        stage = []
        for i in range(math.ceil(repeats * depth)):
            mid_chs = make_divisible(in_chs * exp) if kind == "ir" else in_chs
            # timm divides the SE ratio by the expansion, so SE reduces from the block input.
            se_chs = round(mid_chs * (_SE_RATIO / exp))
            stage.append(BlockSpec(kind, in_chs, out_chs, kernel, stride if i == 0 else 1, mid_chs, se_chs))
            in_chs = out_chs
        stages.append(stage)
    return stages


class SqueezeExcite(nn.Module):
    """timm EfficientNet SE: mean pool, 1x1 conv reduce, SiLU, 1x1 conv expand, sigmoid gate."""

    reduced: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        s = jnp.mean(x.astype(jnp.float32), axis=(1, 2), keepdims=True).astype(self.dtype)
        s = nn.silu(Conv2d(self.reduced, 1, use_bias=True, dtype=self.dtype, name="conv_reduce")(s))
        s = Conv2d(x.shape[-1], 1, use_bias=True, dtype=self.dtype, name="conv_expand")(s)
        return x * nn.sigmoid(s)


class MBConvBlock(nn.Module):
    """timm `DepthwiseSeparableConv` (kind "ds") or `InvertedResidual` (kind "ir")."""

    spec: BlockSpec
    padding: Padding
    bn_eps: float
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        s, dtype = self.spec, self.dtype

        def conv(features: int, kernel: int, name: str, stride: int = 1, groups: int = 1) -> Conv2d:
            return Conv2d(
                features, kernel, stride, self.padding, groups=groups, dtype=dtype,
                kernel_init=normal_fan_out(groups=groups), name=name,
            )

        def bn(name: str) -> nn.BatchNorm:
            return batch_norm(train, eps=self.bn_eps, dtype=dtype, name=name)

        shortcut = x
        if s.kind == "ir":
            x = nn.silu(bn("bn1")(conv(s.mid_chs, 1, "conv_pw")(x)))
            x = conv(s.mid_chs, s.kernel_size, "conv_dw", s.stride, s.mid_chs)(x)
            x = nn.silu(bn("bn2")(x))
            x = SqueezeExcite(s.se_chs, dtype, name="se")(x)
            x = bn("bn3")(conv(s.out_chs, 1, "conv_pwl")(x))
        else:
            x = conv(s.in_chs, s.kernel_size, "conv_dw", s.stride, s.in_chs)(x)
            x = nn.silu(bn("bn1")(x))
            x = SqueezeExcite(s.se_chs, dtype, name="se")(x)
            x = bn("bn2")(conv(s.out_chs, 1, "conv_pw")(x))
        if s.stride == 1 and s.in_chs == s.out_chs:
            x = x + shortcut
        return x


class EfficientNet(nn.Module):
    """conv_stem/bn1, blocks_{stage}_{block}, conv_head/bn2; returns pooled float32 features and
    the named features (jaxtl/models/taps.py): `stem` (bn1, before its SiLU), `blocks_0` ..
    `blocks_6` (each stage's last block), `conv_head` (bn2, before its SiLU), `conv_head_act`
    (bn2 after its SiLU: timm's `bn2` output, Grad-CAM's default), `pre_logits`."""

    width: float = 1.0
    depth: float = 1.0
    padding: Padding = "torch"
    bn_eps: float = 1e-5
    dtype: Dtype = jnp.float32

    min_input_size = 1  # any input size: every downsampling layer pads

    @property
    def num_features(self) -> int:
        return round_channels(1280, self.width)

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> tuple[jnp.ndarray, Features]:
        features: Features = {}
        stages = block_specs(self.width, self.depth)
        x = Conv2d(stages[0][0].in_chs, 3, 2, self.padding, dtype=self.dtype, name="conv_stem")(x)
        x = batch_norm(train, eps=self.bn_eps, dtype=self.dtype, name="bn1")(x)
        x = nn.silu(tap(self, features, STEM, x))
        for i, stage in enumerate(stages):
            for j, spec in enumerate(stage):
                x = MBConvBlock(spec, self.padding, self.bn_eps, self.dtype, name=f"blocks_{i}_{j}")(x, train)
            x = tap(self, features, f"blocks_{i}", x)
        x = Conv2d(self.num_features, 1, padding=self.padding, dtype=self.dtype, name="conv_head")(x)
        x = batch_norm(train, eps=self.bn_eps, dtype=self.dtype, name="bn2")(x)
        x = tap(self, features, "conv_head", x)
        x = tap(self, features, activated("conv_head"), nn.silu(x))
        return tap(self, features, PRE_LOGITS, global_avg_pool(x)), features


# name: (channel multiplier, depth multiplier), as timm's `_gen_efficientnet` calls.
_SCALES = {
    "b0": (1.0, 1.0),
    "b1": (1.0, 1.1),
    "b2": (1.1, 1.2),
    "b3": (1.2, 1.4),
    "b4": (1.4, 1.8),
    "b5": (1.6, 2.2),
}


def _factory(width: float, depth: float, tf: bool):
    def make(dtype: Dtype = jnp.float32) -> EfficientNet:
        if tf:
            return EfficientNet(width, depth, padding="same", bn_eps=1e-3, dtype=dtype)
        return EfficientNet(width, depth, padding="torch", bn_eps=1e-5, dtype=dtype)

    return make


STAGES = (Stage("stem", any_of("conv_stem", "bn1")),
          *(Stage(f"blocks_{i}", rf"blocks_{i}_\d+/") for i in range(7)),
          Stage("conv_head", any_of("conv_head", "bn2")))

_timm = functools.partial(TimmCheckpoint, naming="nested", first_conv="conv_stem",
                          classifier="classifier")
# timm's default pretrained weights of each architecture: their input resolution and tag.
_TIMM = {
    "efficientnet_b0": _timm(resolution=224, tag="ra_in1k"),
    "efficientnet_b1": _timm(resolution=240, tag="ra4_e3600_r240_in1k", mean=INCEPTION_MEAN,
                             std=INCEPTION_STD),
    "efficientnet_b2": _timm(resolution=256, tag="ra_in1k"),
    "efficientnet_b3": _timm(resolution=288, tag="ra2_in1k"),
    "efficientnet_b4": _timm(resolution=320, tag="ra2_in1k"),
    "efficientnet_b5": _timm(resolution=448, tag="sw_in12k_ft_in1k"),
    "tf_efficientnet_b0": _timm(resolution=224, tag="ns_jft_in1k"),
    "tf_efficientnet_b1": _timm(resolution=240, tag="ns_jft_in1k"),
    "tf_efficientnet_b2": _timm(resolution=260, tag="ns_jft_in1k"),
    "tf_efficientnet_b3": _timm(resolution=300, tag="ns_jft_in1k"),
    "tf_efficientnet_b4": _timm(resolution=380, tag="ns_jft_in1k"),
    "tf_efficientnet_b5": _timm(resolution=456, tag="ns_jft_in1k"),
}


def _architecture(name: str) -> Architecture:
    """`efficientnet_b3`, `tf_efficientnet_b3`, ...: the scale is the name's last part."""
    scale = _SCALES[name.rsplit("_", 1)[1]]
    # Grad-CAM explains bn2 after its SiLU (timm's BatchNormAct2d `bn2`): `conv_head_act`
    return Architecture(_factory(*scale, tf=name.startswith("tf_")), STAGES, _TIMM[name],
                        activated_tap=True)


ARCHITECTURES = {name: _architecture(name) for name in _TIMM}
