"""Backbone + head as one Linen module."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxtl.models.taps import LOGITS, PRE_LOGITS, Features

BACKBONE, HEAD = "backbone", "head"  # the attributes holding them: the variables' top keys


class Classifier(nn.Module):
    """Images (N, H, W, C) -> `(logits, out)`, as big_vision's models: logits (N, num_outputs)
    float32, and `out` the backbone's named features (jaxtl/models/taps.py), PRE_LOGITS the
    head's input (the pooled features, float32), plus LOGITS.

    Variables: {"params": {"backbone": ..., "head": ...}, "batch_stats": {"backbone": ...}}.
    """

    backbone: nn.Module  # __call__(x, train) -> (pooled features (N, C), named features)
    head: nn.Module  # __call__(features, train) -> logits

    def __call__(self, images: jnp.ndarray, train: bool) -> tuple[jnp.ndarray, Features]:
        pooled, features = self.backbone(images, train)
        pooled = pooled.astype(jnp.float32)
        logits = self.head(pooled, train).astype(jnp.float32)
        return logits, {**features, PRE_LOGITS: pooled, LOGITS: logits}
