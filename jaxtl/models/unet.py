"""A UNet on any zoo backbone: skip connections from the backbone's stages, a decoder that
upsamples back to the input, one logit per class at every pixel.

Encoder features: the backbone runs as it does in a classifier (same module, same variable
names, so a converted timm checkpoint or a jaxtl classification run loads into it unchanged by
`jaxtl.engine.transfer.load_into`), and the skips are its named stage features
(jaxtl/models/taps.py), those up to the architecture's Grad-CAM stage
(`Architecture.gradcam_stage`: the last feature map on the input's grid; VGG's fc6/fc7
`pre_logits` come after it); of stages whose maps share a grid only the deepest is kept. What
the backbone computes after that (pooling, VGG's fc6/fc7) is unused; XLA drops it from the
compiled step.

Decoder (`UNetDecoder`, the model's `head`, so fine-tuning plans treat it as the head: it
always trains, at `optim.lr`): from the deepest map up, each level resizes to the next skip's
grid (bilinear, `jax.image.resize`), concatenates the skip and applies two 3x3 conv + BN +
ReLU blocks; a last level resizes to the input and applies one more, then a 1x1 convolution
gives the logits (float32). Resizing to the skip's grid rather than doubling makes every zoo
family work, including InceptionV3 (unpadded convolutions: 299 -> 149 -> 147 -> 73 ...) and
inputs that are not multiples of 32.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxtl.models.family import Stage
from jaxtl.models.layers import Dtype, batch_norm, conv2d
from jaxtl.models.registry import create_backbone, feature_maps, resolve_dtype, stages_of
from jaxtl.models.taps import LOGITS, Features

DECODER_CHANNELS = (256, 128, 64, 32, 16)  # per level from the deepest up (the last repeats)


def encoder_stages(arch: str) -> tuple[Stage, ...]:
    """The stages whose outputs are skip connections: those that are feature maps, up to the
    Grad-CAM stage (`models.feature_maps`)."""
    maps = feature_maps(arch)
    return tuple(stage for stage in stages_of(arch) if stage.name in maps)


def _upsample(x: jax.Array, size: tuple[int, int]) -> jax.Array:
    if tuple(x.shape[1:3]) == tuple(size):
        return x
    return jax.image.resize(x, (x.shape[0], *size, x.shape[3]), method="bilinear")


def _block(x: jax.Array, width: int, train: bool, dtype: Dtype, name: str,
           convs: int) -> jax.Array:
    """`convs` x (3x3 conv + BN + ReLU), created in the calling module (inside its compact
    method), named `<name>_conv<i>` and `<name>_bn<i>`."""
    for i in range(convs):
        x = conv2d(width, 3, dtype=dtype, name=f"{name}_conv{i}")(x)
        x = nn.relu(batch_norm(train, dtype=dtype, name=f"{name}_bn{i}")(x))
    return x


class UNetDecoder(nn.Module):
    num_outputs: int
    channels: Sequence[int] = DECODER_CHANNELS
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, skips: Sequence[jax.Array], size: tuple[int, int],
                 train: bool) -> jax.Array:
        """`skips` from the input up (shallow to deep); `size` the input's (H, W)."""
        x = skips[-1].astype(self.dtype)
        width = lambda level: self.channels[min(level, len(self.channels) - 1)]  # noqa: E731
        for level, skip in enumerate(reversed(skips[:-1])):
            x = _upsample(x, skip.shape[1:3])
            x = jnp.concatenate([x, skip.astype(self.dtype)], axis=-1)
            x = _block(x, width(level), train, self.dtype, f"up{level}", convs=2)
        x = _upsample(x, size)
        x = _block(x, width(len(skips) - 1), train, self.dtype, "full", convs=1)
        x = nn.Conv(self.num_outputs, (1, 1), dtype=jnp.float32, param_dtype=jnp.float32,
                    name="logits")(x.astype(jnp.float32))
        return x.astype(jnp.float32)


class UNet(nn.Module):
    """Images (N, H, W, C) -> `(logits, out)` as a `Classifier`: logits (N, H, W, num_outputs)
    float32, `out` the backbone's named features plus LOGITS.

    Variables: {"params": {"backbone": ..., "head": ...}, "batch_stats": {...}}, as a
    `Classifier`'s, with the decoder as the head.
    """

    backbone: nn.Module
    head: UNetDecoder
    stages: tuple[Stage, ...]

    def _skips(self, features: Features) -> list[jax.Array]:
        """The stages' feature maps, shallow to deep, the deepest per grid."""
        by_grid: dict[tuple[int, int], jax.Array] = {}
        for stage in self.stages:
            by_grid[tuple(features[stage.name].shape[1:3])] = features[stage.name]
        return list(by_grid.values())

    def encoder_features(self, images: jax.Array, train: bool) -> list[jax.Array]:
        """The skip maps, shallow to deep: per stage its output, the deepest per grid."""
        _, features = self.backbone(images, train)
        return self._skips(features)

    def __call__(self, images: jax.Array, train: bool) -> tuple[jax.Array, Features]:
        _, features = self.backbone(images, train)
        logits = self.head(self._skips(features), tuple(images.shape[1:3]), train)
        return logits, {**features, LOGITS: logits}


def create_unet(arch: str, *, num_outputs: int, decoder_channels: Sequence[int] = DECODER_CHANNELS,
                dtype: str | Dtype = "float32") -> UNet:
    """A UNet on backbone `arch` computing in `dtype` (the logits in float32)."""
    if num_outputs < 2:
        raise ValueError(f"a segmentation model needs at least 2 classes, got {num_outputs}")
    compute_dtype = resolve_dtype(dtype)
    return UNet(backbone=create_backbone(arch, dtype=compute_dtype),
                head=UNetDecoder(num_outputs, tuple(int(c) for c in decoder_channels),
                                 compute_dtype),
                stages=encoder_stages(arch))
