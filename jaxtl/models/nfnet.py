"""Normalizer-free ResNet-50 (`nf_resnet50`) with timm's layout and numerics.

Name mapping from a timm state dict: a numeric key part (an `nn.Sequential` index) joins
the part before it with "_", every other "." starts a nested module, e.g.
`stages.0.0.downsample.conv.weight` -> `stages_0_0/downsample/conv/kernel`. Leaves: conv
`weight` (OIHW) -> `kernel` (HWIO), `bias` -> `bias`, `gain` (out, 1, 1, 1) -> `gain`
(out,). No batch_stats. timm's `head.fc` is the head's `fc`.

Every conv is a `ScaledStdConv2d` (bias, gain; eps 1e-5; the ReLU gamma 1.7139588594436646
folded into the weight scale as timm does with `gamma_in_act=False`). Blocks are
pre-activation: out = conv3(...(relu(x) * beta)) * alpha + shortcut with alpha 0.2 and
beta = 1 / sqrt(expected variance), which grows by alpha**2 per block and resets to 1 after
each stage's first block. conv3's gain starts at 0 (timm, no skipinit), so at initialisation
every block outputs just its shortcut. Projection shortcuts average-pool 2x2 (ceil mode, only
valid pixels counted) before a 1x1 conv. Drop-path (0 in timm by default) is not implemented.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxtl.models.family import Architecture, Stage, TimmCheckpoint
from jaxtl.models.layers import Dtype, max_pool2d
from jaxtl.models.std_layers import ScaledStdConv2d, global_avg_pool, make_divisible
from jaxtl.models.taps import PRE_LOGITS, STEM, Features, activated, tap

_RELU_GAMMA = 1.7139588594436646  # timm `_nonlin_gamma["relu"]`
_STD_CONV_EPS = 1e-5  # timm NfCfg.std_conv_eps


def _conv(
    features: int, kernel: int, dtype: Dtype, name: str, stride: int = 1, gain_init: float = 1.0
) -> ScaledStdConv2d:
    return ScaledStdConv2d(
        features, kernel, stride, gamma=_RELU_GAMMA, eps=_STD_CONV_EPS, gain_init=gain_init, dtype=dtype, name=name
    )


def avg_pool_ceil(x: jnp.ndarray, window: int, stride: int) -> jnp.ndarray:
    """torch AvgPool2d(window, stride, ceil_mode=True, count_include_pad=False), NHWC."""

    def extra(n: int) -> int:
        out = -(-(n - window) // stride) + 1  # ceil
        if (out - 1) * stride >= n:  # torch drops a last window that would start outside
            out -= 1
        return max((out - 1) * stride + window - n, 0)

    pad = ((0, extra(x.shape[1])), (0, extra(x.shape[2])))
    return nn.avg_pool(x, (window, window), (stride, stride), pad, count_include_pad=False).astype(x.dtype)


class DownsampleAvg(nn.Module):
    """timm nfnet `DownsampleAvg`: 2x2 average pool when strided, then a 1x1 conv named `conv`."""

    features: int
    stride: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        if self.stride > 1:
            x = avg_pool_ceil(x, 2, self.stride)
        return _conv(self.features, 1, self.dtype, "conv")(x)


class NormFreeBlock(nn.Module):
    """timm `NormFreeBlock` (ResNet form: reg=False, bottleneck = out / 4, no attention)."""

    features: int
    stride: int = 1
    alpha: float = 0.2
    beta: float = 1.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        mid = make_divisible(self.features * 0.25, 8)
        out = nn.relu(x) * self.beta
        shortcut = x
        if x.shape[-1] != self.features or self.stride != 1:
            shortcut = DownsampleAvg(self.features, self.stride, self.dtype, name="downsample")(out)
        out = _conv(mid, 1, self.dtype, "conv1")(out)
        out = _conv(mid, 3, self.dtype, "conv2", stride=self.stride)(nn.relu(out))
        out = _conv(self.features, 1, self.dtype, "conv3", gain_init=0.0)(nn.relu(out))
        return out * self.alpha + shortcut


class Stem(nn.Module):
    """timm '7x7_pool' stem: 7x7/2 conv (no activation), 3x3/2 max-pool with padding 1."""

    features: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        return max_pool2d(_conv(self.features, 7, self.dtype, "conv", stride=2)(x), 3, 2, 1)


class NormFreeResNet(nn.Module):
    """stem/conv, stages_{i}_{j}, final ReLU; returns pooled float32 features and the named
    features (jaxtl/models/taps.py): `stem` (after its max-pool), `stages_0` .. `stages_3` (each
    stage's last block; the last one before the final ReLU), `stages_3_act` (after the final
    ReLU: timm's `final_act` output, Grad-CAM's default), `pre_logits`."""

    depths: Sequence[int] = (3, 4, 6, 3)
    alpha: float = 0.2
    dtype: Dtype = jnp.float32

    num_features = 2048
    min_input_size = 1  # any input size: every downsampling layer pads

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> tuple[jnp.ndarray, Features]:
        del train  # no batch statistics, no dropout
        features: Features = {}
        x = tap(self, features, STEM, Stem(64, self.dtype, name="stem")(x))
        for i, betas in enumerate(block_betas(self.depths, self.alpha)):
            for j, beta in enumerate(betas):
                stride = 2 if i > 0 and j == 0 else 1  # the stem already pooled: stage 0 keeps its size
                x = NormFreeBlock(256 * 2**i, stride, self.alpha, beta, self.dtype, name=f"stages_{i}_{j}")(x)
            x = tap(self, features, f"stages_{i}", x)
        x = tap(self, features, activated(f"stages_{len(self.depths) - 1}"), nn.relu(x))
        return tap(self, features, PRE_LOGITS, global_avg_pool(x)), features


def block_betas(depths: Sequence[int], alpha: float) -> list[list[float]]:
    """timm's per-block beta = 1 / sqrt(expected input variance).

    The variance grows by alpha**2 per block and is reset to 1 after each stage's first
    block, whose projection shortcut re-normalises the signal.
    """
    expected_var, betas = 1.0, []
    for depth in depths:
        stage = []
        for j in range(depth):
            stage.append(expected_var**-0.5)
            if j == 0:
                expected_var = 1.0
            expected_var += alpha**2
        betas.append(stage)
    return betas


def nf_resnet50(dtype: Dtype = jnp.float32) -> NormFreeResNet:
    return NormFreeResNet((3, 4, 6, 3), dtype=dtype)


STAGES = (Stage("stem", "stem/"), *(Stage(f"stages_{i}", rf"stages_{i}_\d+/") for i in range(4)))

# Grad-CAM explains the last stage after the final ReLU (timm's `final_act`): `stages_3_act`
ARCHITECTURES = {
    "nf_resnet50": Architecture(nf_resnet50, STAGES, TimmCheckpoint(
        naming="nested", first_conv="stem.conv", classifier="head.fc", resolution=256,
        tag="ra2_in1k"), activated_tap=True),
}
