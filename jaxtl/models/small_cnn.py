"""`small_cnn`: the study's from-scratch baseline, a small CNN with no pretrained weights.

Four blocks of 3x3 conv - BatchNorm - ReLU - 2x2/2 max-pool (32, 64, 128, 256 channels),
then global average pooling: about 0.39 M backbone parameters against 11.7 M for
ResNet18, so transfer learning is compared with a model that is trained from scratch
in reasonable time. Works for any input of at least 16x16.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxtl.models.family import Architecture, Stage
from jaxtl.models.layers import Dtype, batch_norm, conv2d, max_pool2d
from jaxtl.models.taps import PRE_LOGITS, STEM, Features, activated, tap


class SmallCNN(nn.Module):
    """Conv blocks `block{i}_conv` / `block{i}_bn`; returns pooled features (N, widths[-1]) float32
    and the named features (jaxtl/models/taps.py): `block{i}` (its BN, before the ReLU and the
    max-pool), `stem` (= `block1`), the last block's ReLU output before its max-pool
    (`block4_act` with the four default blocks; Grad-CAM's default), `pre_logits`."""

    widths: Sequence[int] = (32, 64, 128, 256)
    dtype: Dtype = jnp.float32

    @property
    def num_features(self) -> int:
        return self.widths[-1]

    @property
    def min_input_size(self) -> int:
        """Smallest square input side in pixels: one 2x2 pool per block."""
        return 2 ** len(self.widths)

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> tuple[jnp.ndarray, Features]:
        min_size = self.min_input_size
        if x.ndim != 4 or min(x.shape[1:3]) < min_size:
            raise ValueError(f"small_cnn needs NHWC images of at least {min_size}x{min_size} pixels, got {x.shape}")
        features: Features = {}
        for i, width in enumerate(self.widths, start=1):
            x = conv2d(width, 3, dtype=self.dtype, name=f"block{i}_conv")(x)
            x = tap(self, features, f"block{i}",
                    batch_norm(train, dtype=self.dtype, name=f"block{i}_bn")(x))
            x = nn.relu(x)
            if i == len(self.widths):
                x = tap(self, features, activated(f"block{i}"), x)
            x = max_pool2d(x, 2, 2, 0)
        features[STEM] = features["block1"]
        pooled = tap(self, features, PRE_LOGITS, jnp.mean(x.astype(jnp.float32), axis=(1, 2)))
        return pooled, features


def small_cnn(dtype: Dtype = jnp.float32) -> SmallCNN:
    return SmallCNN(dtype=dtype)


# jaxtl's own baseline: no timm counterpart, no pretrained weights. Grad-CAM explains block4
# after its ReLU: `block4_act`.
ARCHITECTURES = {
    "small_cnn": Architecture(
        small_cnn, tuple(Stage(f"block{i}", rf"block{i}_") for i in range(1, 5)),
        timm=None, activated_tap=True),
}
