"""timm-compatible convolutions and norms: TF "SAME" padding, (scaled) weight standardisation.

`Conv2d` owns its `kernel` (HWIO) and `bias` directly, so a timm `...conv.weight`
(OIHW) maps to `.../conv/kernel` by `transpose(2, 3, 1, 0)`; a depthwise torch weight
(C, 1, kh, kw) becomes (kh, kw, 1, C), the layout `feature_group_count=C` expects.
Parameters are float32; the convolution runs in `dtype`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jaxtl.models.layers import Dtype

Initializer = Callable[..., jnp.ndarray]
# "torch": timm's symmetric `get_padding`; "same": TF/timm dynamic 'SAME' (asymmetric for
# stride 2 on even inputs); an int or (pad_h, pad_w): explicit symmetric padding.
Padding = str | int | tuple[int, int]


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def get_padding(kernel_size: int, stride: int = 1, dilation: int = 1) -> int:
    """timm's symmetric padding, `((stride - 1) + dilation * (kernel_size - 1)) // 2`."""
    return ((stride - 1) + dilation * (kernel_size - 1)) // 2


def same_padding(size: int, kernel_size: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """TF 'SAME' (low, high) padding of one spatial dim, as timm's `pad_same`: extra pixel at the end."""
    total = max((math.ceil(size / stride) - 1) * stride + (kernel_size - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def pad_same(
    x: jnp.ndarray,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int],
    dilation: int | Sequence[int] = 1,
    value: float = 0.0,
) -> jnp.ndarray:
    """timm `pad_same` for NHWC input."""
    (kh, kw), (sh, sw), (dh, dw) = _pair(kernel_size), _pair(stride), _pair(dilation)
    pad_h = same_padding(x.shape[1], kh, sh, dh)
    pad_w = same_padding(x.shape[2], kw, sw, dw)
    return jnp.pad(x, ((0, 0), pad_h, pad_w, (0, 0)), constant_values=value)


def normal_fan_out(gain: float = 2.0, groups: int = 1) -> Initializer:
    """N(0, gain / fan_out), fan_out = kh * kw * out / groups (timm EfficientNet's `_init_weight_goog`).

    With groups=1 and gain 2 this is torch `kaiming_normal_(mode="fan_out", nonlinearity="relu")`.
    """

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jnp.ndarray:
        kh, kw, _, out = shape
        return jax.random.normal(key, shape, dtype) * math.sqrt(gain * groups / (kh * kw * out))

    return init


# torch kaiming_normal_(mode="fan_in", nonlinearity="linear"): NF-nets' conv init.
normal_fan_in = nn.initializers.variance_scaling(1.0, "fan_in", "normal")


class Conv2d(nn.Module):
    """torch-style 2D conv on NHWC input with timm's padding modes and groups."""

    features: int
    kernel_size: int | tuple[int, int]
    stride: int = 1
    padding: Padding = "torch"
    dilation: int = 1
    groups: int = 1
    use_bias: bool = False
    dtype: Dtype = jnp.float32
    kernel_init: Initializer = normal_fan_out()

    def _pads(self, spatial: Sequence[int]) -> list[tuple[int, int]]:
        kernel = _pair(self.kernel_size)
        if self.padding == "same":
            return [same_padding(n, k, self.stride, self.dilation) for n, k in zip(spatial, kernel)]
        if self.padding == "torch":
            pads = tuple(get_padding(k, self.stride, self.dilation) for k in kernel)
        elif isinstance(self.padding, str):
            raise ValueError(f"unknown padding {self.padding!r}")
        else:
            pads = _pair(self.padding)
        return [(p, p) for p in pads]

    def standardize(self, kernel: jnp.ndarray) -> jnp.ndarray:
        """Hook for weight-standardised subclasses; float32 in, float32 out."""
        return kernel

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        in_features = x.shape[-1]
        if in_features % self.groups or self.features % self.groups:
            raise ValueError(f"groups={self.groups} must divide {in_features} and {self.features} channels")
        kh, kw = _pair(self.kernel_size)
        kernel = self.param("kernel", self.kernel_init, (kh, kw, in_features // self.groups, self.features))
        kernel = self.standardize(kernel)
        y = lax.conv_general_dilated(
            x.astype(self.dtype),
            kernel.astype(self.dtype),
            window_strides=(self.stride, self.stride),
            padding=self._pads(x.shape[1:3]),
            rhs_dilation=(self.dilation, self.dilation),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=self.groups,
        )
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(self.dtype)
        return y


def _standardize(kernel: jnp.ndarray, eps: float) -> jnp.ndarray:
    """(w - mean) / sqrt(var + eps) per output channel, biased variance (torch `F.batch_norm`)."""
    mean = jnp.mean(kernel, axis=(0, 1, 2), keepdims=True)
    var = jnp.mean(jnp.square(kernel - mean), axis=(0, 1, 2), keepdims=True)
    return (kernel - mean) * lax.rsqrt(var + eps)


class StdConv2d(Conv2d):
    """timm `StdConv2d`: weight standardisation (BiT). timm's default eps is 1e-6; BiT uses 1e-8."""

    eps: float = 1e-6

    def standardize(self, kernel: jnp.ndarray) -> jnp.ndarray:
        return _standardize(kernel, self.eps)


class ScaledStdConv2d(Conv2d):
    """timm `ScaledStdConv2d` (NF-nets): standardised weight * gain * gamma / sqrt(fan_in).

    `gain` has shape (out,); timm stores it as (out, 1, 1, 1).
    """

    gamma: float = 1.0
    eps: float = 1e-6
    gain_init: float = 1.0
    use_bias: bool = True
    kernel_init: Initializer = normal_fan_in

    def standardize(self, kernel: jnp.ndarray) -> jnp.ndarray:
        gain = self.param("gain", nn.initializers.constant(self.gain_init), (self.features,))
        fan_in = math.prod(kernel.shape[:3])
        return _standardize(kernel, self.eps) * (gain * (self.gamma * fan_in**-0.5))


def batch_norm(train: bool, *, eps: float, dtype: Dtype, name: str) -> nn.BatchNorm:
    """BatchNorm with torch momentum 0.1 (flax 0.9) and the given eps; float32 statistics.

    As in `layers.batch_norm`, the running variance is updated with the biased batch variance.
    """
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=0.9,
        epsilon=eps,
        dtype=dtype,
        param_dtype=jnp.float32,
        use_fast_variance=False,
        name=name,
    )


def group_norm(*, dtype: Dtype, name: str, num_groups: int = 32, eps: float = 1e-5) -> nn.GroupNorm:
    """torch GroupNorm (eps 1e-5, two-pass variance), float32 statistics."""
    return nn.GroupNorm(
        num_groups=num_groups,
        epsilon=eps,
        dtype=dtype,
        param_dtype=jnp.float32,
        use_fast_variance=False,
        name=name,
    )


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """timm `make_divisible`: nearest multiple of `divisor`, never more than 10% below `v`."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


def global_avg_pool(x: jnp.ndarray) -> jnp.ndarray:
    """(N, H, W, C) -> (N, C) float32."""
    return jnp.mean(x.astype(jnp.float32), axis=(1, 2))
