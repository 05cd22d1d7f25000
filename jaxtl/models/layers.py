"""Building blocks with PyTorch semantics, so torchvision/timm weights map one to one."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

Dtype = Any

# torch.nn.init.kaiming_normal_(mode="fan_out", nonlinearity="relu"), timm's ResNet conv init.
conv_kernel_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def conv2d(
    features: int,
    kernel_size: int,
    stride: int = 1,
    *,
    dtype: Dtype,
    name: str,
    kernel_init: nn.initializers.Initializer = conv_kernel_init,
) -> nn.Conv:
    """Bias-free square conv with torch's symmetric padding `kernel_size // 2`.

    Flax's "SAME" pads asymmetrically for even inputs with stride 2, which would
    shift every feature map relative to torch; explicit padding avoids that.
    """
    pad = kernel_size // 2
    return nn.Conv(
        features,
        (kernel_size, kernel_size),
        strides=(stride, stride),
        padding=((pad, pad), (pad, pad)),
        use_bias=False,
        dtype=dtype,
        param_dtype=jnp.float32,
        kernel_init=kernel_init,
        name=name,
    )


# model.batch_norm_scope: a training BatchNorm's statistics over the global batch, or over each
# device's shard of it (the flax ImageNet example's and big_vision's; jaxtl.engine.steps)
BATCH_NORM_SCOPES = ("global", "device")


def batch_norm(
    train: bool,
    *,
    dtype: Dtype,
    name: str,
    zero_scale: bool = False,
) -> nn.BatchNorm:
    """BatchNorm with torch defaults (eps 1e-5, momentum 0.1 == flax momentum 0.9).

    Statistics and running averages stay float32 whatever `dtype` is. Unlike torch,
    the running variance is updated with the biased batch variance.
    """
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=0.9,
        epsilon=1e-5,
        dtype=dtype,
        param_dtype=jnp.float32,
        scale_init=nn.initializers.zeros if zero_scale else nn.initializers.ones,
        name=name,
    )


def max_pool2d(x: jnp.ndarray, kernel_size: int, stride: int, padding: int) -> jnp.ndarray:
    """torch.nn.MaxPool2d (ceil_mode=False) on NHWC input: borders padded with -inf."""
    pad = ((0, 0), (padding, padding), (padding, padding), (0, 0))
    x = jnp.pad(x, pad, constant_values=-jnp.inf)
    return nn.max_pool(x, (kernel_size, kernel_size), strides=(stride, stride), padding="VALID")
