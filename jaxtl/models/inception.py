"""Inception-V3 (`inception_v3`) with timm's layout and numerics, no auxiliary classifier.

timm's default `inception_v3` has `aux_logits=False`, so `AuxLogits` is neither built nor
counted (23,834,568 parameters at 1000 classes). Name mapping from a timm state dict: a
numeric key part would join the part before it with "_" (Inception has none), every other
"." starts a nested module, e.g. `Mixed_6b.branch7x7_2.conv.weight` ->
`Mixed_6b/branch7x7_2/conv/kernel`. Leaves: conv `weight` (OIHW) -> `kernel` (HWIO);
BN `weight`/`bias` -> params `scale`/`bias`, `running_mean`/`running_var` -> batch_stats
`mean`/`var`. timm's top-level `fc` is the head's `fc`.

Every conv is timm's `ConvNormAct`: bias-free conv `conv`, BatchNorm `bn` (eps 1e-3), ReLU.
Pool branches average 3x3 windows with zero padding counted (torch `count_include_pad=True`).
The smallest valid input is 75 px; 299 is native. Weights start as timm's: N(0, 0.1).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxtl.models.family import INCEPTION_MEAN, INCEPTION_STD, Architecture, Stage, TimmCheckpoint
from jaxtl.models.layers import Dtype
from jaxtl.models.std_layers import Conv2d, batch_norm, global_avg_pool
from jaxtl.models.taps import PRE_LOGITS, STEM, Features, tap

_BN_EPS = 1e-3


class ConvBN(nn.Module):
    """timm `ConvNormAct`: conv (`conv`) -> BatchNorm (`bn`) -> ReLU."""

    features: int
    kernel_size: int | tuple[int, int]
    stride: int = 1
    padding: int | tuple[int, int] = 0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        x = Conv2d(
            self.features, self.kernel_size, self.stride, self.padding, dtype=self.dtype,
            kernel_init=nn.initializers.normal(0.1), name="conv",
        )(x)
        return nn.relu(batch_norm(train, eps=_BN_EPS, dtype=self.dtype, name="bn")(x))


def _avg_pool_3x3(x: jnp.ndarray) -> jnp.ndarray:
    """torch F.avg_pool2d(x, 3, stride=1, padding=1): zero padding counts in the mean."""
    return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=True)


def _max_pool_3x3_s2(x: jnp.ndarray) -> jnp.ndarray:
    return nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")


class _Mixed(nn.Module):
    """Base for the Inception blocks: `_conv(name, features, kernel, ...)` builds a ConvBN."""

    dtype: Dtype = jnp.float32

    def _conv(self, name: str, features: int, kernel, stride: int = 1, padding=0) -> ConvBN:
        return ConvBN(features, kernel, stride, padding, self.dtype, name=name)


class InceptionA(_Mixed):
    pool_features: int = 32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        b1 = self._conv("branch1x1", 64, 1)(x, train)
        b5 = self._conv("branch5x5_1", 48, 1)(x, train)
        b5 = self._conv("branch5x5_2", 64, 5, padding=2)(b5, train)
        b3 = self._conv("branch3x3dbl_1", 64, 1)(x, train)
        b3 = self._conv("branch3x3dbl_2", 96, 3, padding=1)(b3, train)
        b3 = self._conv("branch3x3dbl_3", 96, 3, padding=1)(b3, train)
        bp = self._conv("branch_pool", self.pool_features, 1)(_avg_pool_3x3(x), train)
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(_Mixed):
    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        b3 = self._conv("branch3x3", 384, 3, stride=2)(x, train)
        bd = self._conv("branch3x3dbl_1", 64, 1)(x, train)
        bd = self._conv("branch3x3dbl_2", 96, 3, padding=1)(bd, train)
        bd = self._conv("branch3x3dbl_3", 96, 3, stride=2)(bd, train)
        return jnp.concatenate([b3, bd, _max_pool_3x3_s2(x)], axis=-1)


class InceptionC(_Mixed):
    channels_7x7: int = 128

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        c7 = self.channels_7x7
        b1 = self._conv("branch1x1", 192, 1)(x, train)
        b7 = self._conv("branch7x7_1", c7, 1)(x, train)
        b7 = self._conv("branch7x7_2", c7, (1, 7), padding=(0, 3))(b7, train)
        b7 = self._conv("branch7x7_3", 192, (7, 1), padding=(3, 0))(b7, train)
        bd = self._conv("branch7x7dbl_1", c7, 1)(x, train)
        bd = self._conv("branch7x7dbl_2", c7, (7, 1), padding=(3, 0))(bd, train)
        bd = self._conv("branch7x7dbl_3", c7, (1, 7), padding=(0, 3))(bd, train)
        bd = self._conv("branch7x7dbl_4", c7, (7, 1), padding=(3, 0))(bd, train)
        bd = self._conv("branch7x7dbl_5", 192, (1, 7), padding=(0, 3))(bd, train)
        bp = self._conv("branch_pool", 192, 1)(_avg_pool_3x3(x), train)
        return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(_Mixed):
    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        b3 = self._conv("branch3x3_1", 192, 1)(x, train)
        b3 = self._conv("branch3x3_2", 320, 3, stride=2)(b3, train)
        b7 = self._conv("branch7x7x3_1", 192, 1)(x, train)
        b7 = self._conv("branch7x7x3_2", 192, (1, 7), padding=(0, 3))(b7, train)
        b7 = self._conv("branch7x7x3_3", 192, (7, 1), padding=(3, 0))(b7, train)
        b7 = self._conv("branch7x7x3_4", 192, 3, stride=2)(b7, train)
        return jnp.concatenate([b3, b7, _max_pool_3x3_s2(x)], axis=-1)


class InceptionE(_Mixed):
    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        b1 = self._conv("branch1x1", 320, 1)(x, train)
        b3 = self._conv("branch3x3_1", 384, 1)(x, train)
        b3 = jnp.concatenate([
            self._conv("branch3x3_2a", 384, (1, 3), padding=(0, 1))(b3, train),
            self._conv("branch3x3_2b", 384, (3, 1), padding=(1, 0))(b3, train),
        ], axis=-1)
        bd = self._conv("branch3x3dbl_1", 448, 1)(x, train)
        bd = self._conv("branch3x3dbl_2", 384, 3, padding=1)(bd, train)
        bd = jnp.concatenate([
            self._conv("branch3x3dbl_3a", 384, (1, 3), padding=(0, 1))(bd, train),
            self._conv("branch3x3dbl_3b", 384, (3, 1), padding=(1, 0))(bd, train),
        ], axis=-1)
        bp = self._conv("branch_pool", 192, 1)(_avg_pool_3x3(x), train)
        return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class InceptionV3(nn.Module):
    """Conv2d_1a_3x3 ... Mixed_7c; returns pooled float32 features (2048) and the named features
    (jaxtl/models/taps.py): `stem` (Conv2d_4a_3x3, before the max-pool), `mixed_5` (Mixed_5d),
    `mixed_6` (Mixed_6e), `mixed_7` (Mixed_7c), `pre_logits`."""

    dtype: Dtype = jnp.float32

    num_features = 2048
    min_input_size = 75  # smallest square input side in pixels (as timm)

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> tuple[jnp.ndarray, Features]:
        m = self.min_input_size
        if min(x.shape[1:3]) < m:
            raise ValueError(f"inception_v3 needs inputs of at least {m}x{m} pixels, got {x.shape[1:3]}")
        d = self.dtype
        features: Features = {}
        x = ConvBN(32, 3, 2, dtype=d, name="Conv2d_1a_3x3")(x, train)
        x = ConvBN(32, 3, dtype=d, name="Conv2d_2a_3x3")(x, train)
        x = ConvBN(64, 3, padding=1, dtype=d, name="Conv2d_2b_3x3")(x, train)
        x = _max_pool_3x3_s2(x)
        x = ConvBN(80, 1, dtype=d, name="Conv2d_3b_1x1")(x, train)
        x = ConvBN(192, 3, dtype=d, name="Conv2d_4a_3x3")(x, train)
        x = _max_pool_3x3_s2(tap(self, features, STEM, x))
        x = InceptionA(d, 32, name="Mixed_5b")(x, train)
        x = InceptionA(d, 64, name="Mixed_5c")(x, train)
        x = tap(self, features, "mixed_5", InceptionA(d, 64, name="Mixed_5d")(x, train))
        x = InceptionB(d, name="Mixed_6a")(x, train)
        x = InceptionC(d, 128, name="Mixed_6b")(x, train)
        x = InceptionC(d, 160, name="Mixed_6c")(x, train)
        x = InceptionC(d, 160, name="Mixed_6d")(x, train)
        x = tap(self, features, "mixed_6", InceptionC(d, 192, name="Mixed_6e")(x, train))
        x = InceptionD(d, name="Mixed_7a")(x, train)
        x = InceptionE(d, name="Mixed_7b")(x, train)
        x = tap(self, features, "mixed_7", InceptionE(d, name="Mixed_7c")(x, train))
        return tap(self, features, PRE_LOGITS, global_avg_pool(x)), features


def inception_v3(dtype: Dtype = jnp.float32) -> InceptionV3:
    return InceptionV3(dtype=dtype)


STAGES = (Stage("stem", r"Conv2d_\w+/"), Stage("mixed_5", r"Mixed_5\w/"),
          Stage("mixed_6", r"Mixed_6\w/"), Stage("mixed_7", r"Mixed_7\w/"))

ARCHITECTURES = {
    "inception_v3": Architecture(inception_v3, STAGES, TimmCheckpoint(
        naming="nested", first_conv="Conv2d_1a_3x3.conv", classifier="fc", resolution=299,
        tag="tv_in1k", mean=INCEPTION_MEAN, std=INCEPTION_STD)),
}
