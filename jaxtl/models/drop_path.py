"""Stochastic depth (timm's `DropPath`): a residual branch dropped per example while training."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


def drop_path(module: nn.Module, x: jnp.ndarray, rate: float, train: bool) -> jnp.ndarray:
    """`x` (a residual branch, batch first) zeroed for a random `rate` of the examples and the
    rest scaled by 1 / (1 - rate), as timm's `drop_path(scale_by_keep=True)`; the identity in
    evaluation or at rate 0. Draws from `module`'s "dropout" rng stream."""
    if not train or rate == 0.0:
        return x
    keep = 1.0 - rate
    mask = jax.random.bernoulli(module.make_rng("dropout"), keep, (x.shape[0],) + (1,) * (x.ndim - 1))
    return jnp.where(mask, x / jnp.asarray(keep, x.dtype), jnp.zeros((), x.dtype))


def block_rates(rate: float, num_blocks: int) -> list[float]:
    """timm's per-block drop-path rates: linear from 0 at the first block to `rate` at the last."""
    if num_blocks == 1:
        return [0.0]
    return [rate * i / (num_blocks - 1) for i in range(num_blocks)]
