"""DenseNet-BC backbones laid out like timm's `densenet121/169/201`, so its weights convert by name.

Variables are named after timm's module paths with "." replaced by "_"
(`features.denseblock1.denselayer1.norm1` -> `features_denseblock1_denselayer1_norm1`).
Every `norm*` is timm's BatchNormAct2d: BatchNorm followed by ReLU.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxtl.models.family import Architecture, Stage, TimmCheckpoint
from jaxtl.models.layers import Dtype, batch_norm, conv2d, max_pool2d
from jaxtl.models.taps import PRE_LOGITS, STEM, Features, activated, tap

# torch.nn.init.kaiming_normal_ defaults (fan_in, gain sqrt(2)): timm's DenseNet conv init.
_kernel_init = nn.initializers.variance_scaling(2.0, "fan_in", "normal")


def _conv(x: jnp.ndarray, features: int, kernel_size: int, stride: int, *, dtype: Dtype, name: str) -> jnp.ndarray:
    return conv2d(features, kernel_size, stride, dtype=dtype, name=name, kernel_init=_kernel_init)(x)


def _norm_act(x: jnp.ndarray, train: bool, *, dtype: Dtype, name: str) -> jnp.ndarray:
    return nn.relu(batch_norm(train, dtype=dtype, name=name)(x))


class DenseNet(nn.Module):
    """DenseNet trunk; returns globally average-pooled `norm5` features (N, C) in float32 and
    the named features (jaxtl/models/taps.py): `stem` (norm0, before its ReLU and the max-pool),
    `denseblock1` .. `denseblock3` (the transition's conv, before its average pool),
    `denseblock4` (norm5, before its ReLU), `denseblock4_act` (norm5 after its ReLU: timm's
    `norm5` output, Grad-CAM's default), `pre_logits`.

    Layers are created by helpers called from this one compact scope (no submodules), so
    the variable tree is flat: `features_transition1_conv/kernel`. Needs inputs of at least
    32x32 (the last dense block runs at stride 32).
    """

    block_config: Sequence[int]
    growth_rate: int = 32
    bn_size: int = 4
    dtype: Dtype = jnp.float32

    min_input_size = 32  # smallest square input side in pixels

    @property
    def num_features(self) -> int:
        features = 2 * self.growth_rate
        for i, num_layers in enumerate(self.block_config):
            features += num_layers * self.growth_rate
            if i < len(self.block_config) - 1:
                features //= 2
        return features

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> tuple[jnp.ndarray, Features]:
        m = self.min_input_size
        if x.ndim != 4 or min(x.shape[1:3]) < m:
            raise ValueError(f"DenseNet needs NHWC images of at least {m}x{m} pixels, got shape {x.shape}")
        dtype = self.dtype
        features: Features = {}
        x = _conv(x, 2 * self.growth_rate, 7, 2, dtype=dtype, name="features_conv0")
        x = tap(self, features, STEM, batch_norm(train, dtype=dtype, name="features_norm0")(x))
        x = max_pool2d(nn.relu(x), 3, 2, 1)
        for i, num_layers in enumerate(self.block_config):
            block = f"features_denseblock{i + 1}"
            for j in range(num_layers):
                x = jnp.concatenate([x, self._dense_layer(x, train, f"{block}_denselayer{j + 1}")], axis=-1)
            if i < len(self.block_config) - 1:
                name = f"features_transition{i + 1}"
                x = _norm_act(x, train, dtype=dtype, name=f"{name}_norm")
                x = _conv(x, x.shape[-1] // 2, 1, 1, dtype=dtype, name=f"{name}_conv")
                x = tap(self, features, f"denseblock{i + 1}", x)
                x = nn.avg_pool(x, (2, 2), strides=(2, 2), padding="VALID")
        last = f"denseblock{len(self.block_config)}"
        x = tap(self, features, last, batch_norm(train, dtype=dtype, name="features_norm5")(x))
        x = tap(self, features, activated(last), nn.relu(x))
        pooled = tap(self, features, PRE_LOGITS, jnp.mean(x.astype(jnp.float32), axis=(1, 2)))
        return pooled, features

    def _dense_layer(self, x: jnp.ndarray, train: bool, name: str) -> jnp.ndarray:
        """BN-ReLU-1x1 conv (bn_size * growth) -BN-ReLU-3x3 conv (growth): the new channels.

        The caller appends them after the input channels, as timm's torch.cat([x, new...]).
        """
        dtype = self.dtype
        y = _norm_act(x, train, dtype=dtype, name=f"{name}_norm1")
        y = _conv(y, self.bn_size * self.growth_rate, 1, 1, dtype=dtype, name=f"{name}_conv1")
        y = _norm_act(y, train, dtype=dtype, name=f"{name}_norm2")
        return _conv(y, self.growth_rate, 3, 1, dtype=dtype, name=f"{name}_conv2")


def densenet121(dtype: Dtype = jnp.float32) -> DenseNet:
    return DenseNet((6, 12, 24, 16), dtype=dtype)


def densenet169(dtype: Dtype = jnp.float32) -> DenseNet:
    return DenseNet((6, 12, 32, 32), dtype=dtype)


def densenet201(dtype: Dtype = jnp.float32) -> DenseNet:
    return DenseNet((6, 12, 48, 32), dtype=dtype)


# each dense block with the transition that follows it; norm5 closes the last block
STAGES = (Stage("stem", "features_(conv0|norm0)/"),
          *(Stage(f"denseblock{i}", rf"features_(denseblock{i}_|transition{i}_)") for i in range(1, 4)),
          Stage("denseblock4", "features_(denseblock4_|norm5/)"))


def _timm(tag: str) -> TimmCheckpoint:
    return TimmCheckpoint(naming="flat", first_conv="features.conv0", classifier="classifier",
                          resolution=224, tag=tag)


# Grad-CAM explains norm5 after its ReLU (timm's BatchNormAct2d `norm5`): `denseblock4_act`
ARCHITECTURES = {
    "densenet121": Architecture(densenet121, STAGES, _timm("ra_in1k"), activated_tap=True),
    "densenet169": Architecture(densenet169, STAGES, _timm("tv_in1k"), activated_tap=True),
    "densenet201": Architecture(densenet201, STAGES, _timm("tv_in1k"), activated_tap=True),
}
