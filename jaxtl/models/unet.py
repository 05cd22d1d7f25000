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

Vision Transformers (plain backbones: every block's token grid at the patch stride): the skips
are the patch grids (`block<i>`, jaxtl/models/vit.py) of four evenly spaced blocks, as UNETR
(Hatamizadeh et al. 2022: z3, z6, z9, z12 of a 12-block ViT) and BEiT's segmentation
(blocks 3, 5, 7, 11) take them: block `n k / 4 - 1` for k = 1..4, with n the blocks up to the
architecture's Grad-CAM block (`ViTConfig.gradcam_block`: all blocks of a mean-pooled ViT, so
2, 5, 8, 11 of a 12-block one, UNETR's; a class-token ViT's last block leaves only the class
token reaching the classifier, so its pyramid ends one block earlier: 1, 4, 7, 10). The decoder
first resamples them into a pyramid at strides patch/4, patch/2, patch and 2 patch (4, 8, 16, 32
for 16 px patches) with the operators of ViTDet's simple feature pyramid (Li et al. 2022,
`ViTPyramid`): two 2x2 stride-2 transposed convolutions with LayerNorm and GELU between (D ->
D/2 -> D/4 channels), one (D -> D/2), the grid as it is, and 2x2 max pooling. These layers are
new (part of the head), so a converted timm ViT or a classification run still loads into the
encoder unchanged.
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
from jaxtl.models.vit import VisionTransformer, block_name

DECODER_CHANNELS = (256, 128, 64, 32, 16)  # per level from the deepest up (the last repeats)
PYRAMID_LEVELS = 4  # a plain backbone's skips: blocks and pyramid levels (module doc)
PYRAMID_NORM_EPS = 1e-6  # ViTDet's LayerNorm between the two transposed convolutions


def is_plain(arch: str) -> bool:
    """Whether `arch` is a plain backbone (a ViT: one grid for every block), whose skips the
    decoder resamples into a pyramid (module doc)."""
    return isinstance(create_backbone(arch), VisionTransformer)


def pyramid_blocks(arch: str) -> tuple[str, ...]:
    """A plain backbone's skips: the evenly spaced blocks of the module doc, shallow to deep
    (a backbone of fewer blocks than levels repeats some)."""
    blocks = create_backbone(arch).config.gradcam_block + 1
    return tuple(block_name(max(blocks * k // PYRAMID_LEVELS - 1, 0))
                 for k in range(1, PYRAMID_LEVELS + 1))


def encoder_stages(arch: str) -> tuple[Stage, ...]:
    """The stages whose outputs are skip connections: those that are feature maps, up to the
    Grad-CAM stage (`models.feature_maps`); a plain backbone's evenly spaced blocks."""
    if is_plain(arch):
        by_name = {stage.name: stage for stage in stages_of(arch)}
        return tuple(by_name[name] for name in pyramid_blocks(arch))
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


class ViTPyramid(nn.Module):
    """Four maps on one grid (shallow to deep) -> the pyramid at 1/4, 1/2, 1 and 2 times its
    stride, ViTDet's simple-pyramid operators (module doc)."""

    dtype: Dtype = jnp.float32

    def _up(self, x: jax.Array, width: int, name: str) -> jax.Array:
        return nn.ConvTranspose(width, (2, 2), strides=(2, 2), dtype=self.dtype,
                                param_dtype=jnp.float32, name=name)(x)

    @nn.compact
    def __call__(self, maps: Sequence[jax.Array]) -> list[jax.Array]:
        if len(maps) != PYRAMID_LEVELS:
            raise ValueError(f"a plain backbone's pyramid takes {PYRAMID_LEVELS} maps, got "
                             f"{len(maps)}")
        fine, middle, same, coarse = (m.astype(self.dtype) for m in maps)
        width = fine.shape[-1]
        fine = self._up(fine, width // 2, "up4_0")
        fine = nn.LayerNorm(epsilon=PYRAMID_NORM_EPS, dtype=self.dtype,
                            param_dtype=jnp.float32, name="up4_norm")(fine)
        fine = nn.gelu(fine, approximate=False)
        fine = self._up(fine, width // 4, "up4_1")
        middle = self._up(middle, middle.shape[-1] // 2, "up2")
        coarse = nn.max_pool(coarse, (2, 2), strides=(2, 2), padding="SAME")
        return [fine, middle, same, coarse]


class UNetDecoder(nn.Module):
    num_outputs: int
    channels: Sequence[int] = DECODER_CHANNELS
    dtype: Dtype = jnp.float32
    pyramid: bool = False  # skips from a plain backbone: resampled by a ViTPyramid first

    @nn.compact
    def __call__(self, skips: Sequence[jax.Array], size: tuple[int, int],
                 train: bool) -> jax.Array:
        """`skips` from the input up (shallow to deep); `size` the input's (H, W)."""
        if self.pyramid:
            skips = ViTPyramid(self.dtype, name="pyramid")(skips)
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
        """The stages' feature maps, shallow to deep, the deepest per grid (a plain
        backbone's: every one)."""
        if self.head.pyramid:
            return [features[stage.name] for stage in self.stages]
        by_grid: dict[tuple[int, int], jax.Array] = {}
        for stage in self.stages:
            by_grid[tuple(features[stage.name].shape[1:3])] = features[stage.name]
        return list(by_grid.values())

    def encoder_features(self, images: jax.Array, train: bool) -> list[jax.Array]:
        """The skip maps, shallow to deep: per stage its output, the deepest per grid (a plain
        backbone's: the chosen blocks' grids, before the decoder's pyramid)."""
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
                                 compute_dtype, pyramid=is_plain(arch)),
                stages=encoder_stages(arch))
