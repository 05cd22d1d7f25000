"""ResNet v1.5 backbones named like timm/torchvision (`layer1_0/conv1`, `downsample_conv`, ...).

The last BatchNorm of every residual block starts with scale 0 (timm's default
`zero_init_last=True`), so each block is the identity at initialisation. Because of
that, the branch layers before that BN get exactly zero gradient on the first step.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxtl.models.family import Architecture, Stage, TimmCheckpoint, any_of
from jaxtl.models.layers import Dtype, batch_norm, conv2d, max_pool2d
from jaxtl.models.taps import PRE_LOGITS, STEM, Features, tap


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet18/34)."""

    features: int
    stride: int = 1
    dtype: Dtype = jnp.float32

    expansion = 1

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        shortcut = x
        y = conv2d(self.features, 3, self.stride, dtype=self.dtype, name="conv1")(x)
        y = nn.relu(batch_norm(train, dtype=self.dtype, name="bn1")(y))
        y = conv2d(self.features, 3, dtype=self.dtype, name="conv2")(y)
        y = batch_norm(train, dtype=self.dtype, name="bn2", zero_scale=True)(y)
        return nn.relu(y + _shortcut(shortcut, self.features, self.stride, train, self.dtype))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride: v1.5), 1x1 expand by 4 (ResNet50+)."""

    features: int
    stride: int = 1
    dtype: Dtype = jnp.float32

    expansion = 4

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        out_features = self.features * self.expansion
        shortcut = x
        y = conv2d(self.features, 1, dtype=self.dtype, name="conv1")(x)
        y = nn.relu(batch_norm(train, dtype=self.dtype, name="bn1")(y))
        y = conv2d(self.features, 3, self.stride, dtype=self.dtype, name="conv2")(y)
        y = nn.relu(batch_norm(train, dtype=self.dtype, name="bn2")(y))
        y = conv2d(out_features, 1, dtype=self.dtype, name="conv3")(y)
        y = batch_norm(train, dtype=self.dtype, name="bn3", zero_scale=True)(y)
        return nn.relu(y + _shortcut(shortcut, out_features, self.stride, train, self.dtype))


def _shortcut(x: jnp.ndarray, features: int, stride: int, train: bool, dtype: Dtype) -> jnp.ndarray:
    """Identity, or 1x1 strided conv + BN when the shape changes (torchvision's `downsample`)."""
    if stride == 1 and x.shape[-1] == features:
        return x
    x = conv2d(features, 1, stride, dtype=dtype, name="downsample_conv")(x)
    return batch_norm(train, dtype=dtype, name="downsample_bn")(x)


class ResNet(nn.Module):
    """ResNet trunk; returns globally average-pooled features (N, C) in float32 and the named
    features (jaxtl/models/taps.py): `stem` (bn1, before its ReLU and the max-pool), `layer1`
    .. `layer4` (each stage's last block), `pre_logits`."""

    block: type[BasicBlock] | type[Bottleneck]
    stage_sizes: Sequence[int]
    dtype: Dtype = jnp.float32

    min_input_size = 1  # any input size: every downsampling layer pads

    @property
    def num_features(self) -> int:
        return 512 * self.block.expansion

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> tuple[jnp.ndarray, Features]:
        features: Features = {}
        x = conv2d(64, 7, 2, dtype=self.dtype, name="conv1")(x)
        x = tap(self, features, STEM, batch_norm(train, dtype=self.dtype, name="bn1")(x))
        x = max_pool2d(nn.relu(x), 3, 2, 1)
        for i, num_blocks in enumerate(self.stage_sizes):
            for j in range(num_blocks):
                stride = 2 if i > 0 and j == 0 else 1
                x = self.block(64 * 2**i, stride, self.dtype, name=f"layer{i + 1}_{j}")(x, train)
            x = tap(self, features, f"layer{i + 1}", x)
        pooled = tap(self, features, PRE_LOGITS, jnp.mean(x.astype(jnp.float32), axis=(1, 2)))
        return pooled, features


def resnet18(dtype: Dtype = jnp.float32) -> ResNet:
    return ResNet(BasicBlock, (2, 2, 2, 2), dtype=dtype)


def resnet34(dtype: Dtype = jnp.float32) -> ResNet:
    return ResNet(BasicBlock, (3, 4, 6, 3), dtype=dtype)


def resnet50(dtype: Dtype = jnp.float32) -> ResNet:
    return ResNet(Bottleneck, (3, 4, 6, 3), dtype=dtype)


def resnet101(dtype: Dtype = jnp.float32) -> ResNet:
    return ResNet(Bottleneck, (3, 4, 23, 3), dtype=dtype)


def resnet152(dtype: Dtype = jnp.float32) -> ResNet:
    return ResNet(Bottleneck, (3, 8, 36, 3), dtype=dtype)


STAGES = (Stage("stem", any_of("conv1", "bn1")),
          *(Stage(f"layer{i}", rf"layer{i}_\d+/") for i in range(1, 5)))


def _timm(tag: str) -> TimmCheckpoint:
    return TimmCheckpoint(naming="resnet", first_conv="conv1", classifier="fc", resolution=224,
                          tag=tag)


ARCHITECTURES = {
    "resnet18": Architecture(resnet18, STAGES, _timm("a1_in1k")),
    "resnet34": Architecture(resnet34, STAGES, _timm("a1_in1k")),
    "resnet50": Architecture(resnet50, STAGES, _timm("a1_in1k")),
    "resnet101": Architecture(resnet101, STAGES, _timm("a1h_in1k")),
    "resnet152": Architecture(resnet152, STAGES, _timm("a1h_in1k")),
}
