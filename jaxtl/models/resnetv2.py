"""ResNetV2-50x1 BiT (`resnetv2_50x1_bit`) with timm's layout and numerics.

Name mapping from a timm state dict: a numeric key part (an `nn.Sequential` index) joins
the part before it with "_", every other "." starts a nested module, e.g.
`stages.1.blocks.0.downsample.conv.weight` -> `stages_1/blocks_0/downsample/conv/kernel`.
Leaves: conv `weight` (OIHW) -> `kernel` (HWIO); GroupNorm `weight`/`bias` -> `scale`/`bias`.
No batch_stats. timm's `head.fc` is a 1x1 conv with bias, weight (1000, 2048, 1, 1); it is
the head's Dense `fc` here: kernel = weight[:, :, 0, 0].T (same parameter count).

Pre-activation bottlenecks (GroupNorm 32 + ReLU before each weight-standardised conv,
eps 1e-8), the stride on the 3x3 conv, a 1x1 projection on the pre-activated input of
each stage's first block, a 7x7/2 stem conv, then BiT's "fixed" padding: zero-pad 1 and
3x3/2 max-pool without padding (zeros, not -inf: the stem output is not yet activated).
Weights start as timm's (`zero_init_last=False`): kaiming-normal fan-out, GN scale 1.
Drop-path (stochastic depth, 0 in timm by default) is not implemented.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxtl.models.family import INCEPTION_MEAN, INCEPTION_STD, Architecture, Stage, TimmCheckpoint
from jaxtl.models.layers import Dtype
from jaxtl.models.std_layers import StdConv2d, global_avg_pool, group_norm, make_divisible
from jaxtl.models.taps import PRE_LOGITS, STEM, Features, activated, tap

_BIT_EPS = 1e-8  # timm `_create_resnetv2_bit`: partial(StdConv2d, eps=1e-8)


def _conv(features: int, kernel: int, stride: int, dtype: Dtype, name: str) -> StdConv2d:
    return StdConv2d(features, kernel, stride, eps=_BIT_EPS, dtype=dtype, name=name)


class Downsample(nn.Module):
    """timm `DownsampleConv` with `preact=True`: a strided 1x1 conv named `conv`, no norm."""

    features: int
    stride: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        return _conv(self.features, 1, self.stride, self.dtype, "conv")(x)


class PreActBottleneck(nn.Module):
    """norm1 -> (downsample), conv1 1x1 -> norm2 -> conv2 3x3/s -> norm3 -> conv3 1x1, + shortcut."""

    features: int  # output channels; the bottleneck has a quarter
    stride: int = 1
    project: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        mid = make_divisible(self.features * 0.25)
        x_preact = nn.relu(group_norm(dtype=self.dtype, name="norm1")(x))
        shortcut = x
        if self.project:
            shortcut = Downsample(self.features, self.stride, self.dtype, name="downsample")(x_preact)
        y = _conv(mid, 1, 1, self.dtype, "conv1")(x_preact)
        y = nn.relu(group_norm(dtype=self.dtype, name="norm2")(y))
        y = _conv(mid, 3, self.stride, self.dtype, "conv2")(y)
        y = nn.relu(group_norm(dtype=self.dtype, name="norm3")(y))
        y = _conv(self.features, 1, 1, self.dtype, "conv3")(y)
        return y + shortcut


class ResNetStage(nn.Module):
    """timm `ResNetStage`: blocks named `blocks_{i}`; the first one projects and strides."""

    features: int
    depth: int
    stride: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        for i in range(self.depth):
            first = i == 0
            x = PreActBottleneck(
                self.features, self.stride if first else 1, first, self.dtype, name=f"blocks_{i}"
            )(x)
        return x


def fixed_pad_max_pool(x: jnp.ndarray) -> jnp.ndarray:
    """BiT's 'fixed' SAME approximation: zero-pad 1 (zeros, not -inf), then 3x3/2 max-pool."""
    x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")


class Stem(nn.Module):
    """BiT 'fixed' stem: 7x7/2 conv named `conv`, then `fixed_pad_max_pool`."""

    features: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        return fixed_pad_max_pool(_conv(self.features, 7, 2, self.dtype, "conv")(x))


class ResNetV2(nn.Module):
    """stem/conv, stages_{i}/blocks_{j}, final `norm` (GN + ReLU); returns pooled float32 features
    and the named features (jaxtl/models/taps.py): `stem` (after its max-pool), `stages_0` ..
    `stages_2` (each stage's output), `stages_3` (the final norm, before its ReLU: it belongs to
    the last stage), `stages_3_act` (the final norm after its ReLU: timm's GroupNormAct `norm`
    output, Grad-CAM's default), `pre_logits`."""

    layers: Sequence[int] = (3, 4, 6, 3)
    width_factor: int = 1
    dtype: Dtype = jnp.float32

    min_input_size = 1  # any input size: every downsampling layer pads

    @property
    def num_features(self) -> int:
        return make_divisible(2048 * self.width_factor)

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> tuple[jnp.ndarray, Features]:
        del train  # no batch statistics, no dropout
        features: Features = {}
        x = Stem(make_divisible(64 * self.width_factor), self.dtype, name="stem")(x)
        x = tap(self, features, STEM, x)
        last = len(self.layers) - 1
        for i, depth in enumerate(self.layers):
            width = make_divisible(256 * 2**i * self.width_factor)
            x = ResNetStage(width, depth, 1 if i == 0 else 2, self.dtype, name=f"stages_{i}")(x)
            if i < last:
                x = tap(self, features, f"stages_{i}", x)
        x = tap(self, features, f"stages_{last}", group_norm(dtype=self.dtype, name="norm")(x))
        x = tap(self, features, activated(f"stages_{last}"), nn.relu(x))
        return tap(self, features, PRE_LOGITS, global_avg_pool(x)), features


def resnetv2_50x1_bit(dtype: Dtype = jnp.float32) -> ResNetV2:
    return ResNetV2((3, 4, 6, 3), width_factor=1, dtype=dtype)


# the final pre-activation norm sits on top of the last stage
STAGES = (Stage("stem", "stem/"), Stage("stages_0", "stages_0/"), Stage("stages_1", "stages_1/"),
          Stage("stages_2", "stages_2/"), Stage("stages_3", "(stages_3|norm)/"))

# Grad-CAM explains the final norm after its ReLU (timm's GroupNormAct `norm`): `stages_3_act`
ARCHITECTURES = {
    "resnetv2_50x1_bit": Architecture(resnetv2_50x1_bit, STAGES, TimmCheckpoint(
        naming="nested", first_conv="stem.conv", classifier="head.fc", resolution=224,
        tag="goog_distilled_in1k", mean=INCEPTION_MEAN, std=INCEPTION_STD), activated_tap=True),
}
