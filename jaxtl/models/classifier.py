"""Backbone + head as one Linen module."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


class Classifier(nn.Module):
    """Images (N, H, W, C) -> logits (N, num_outputs) float32.

    Variables: {"params": {"backbone": ..., "head": ...}, "batch_stats": {"backbone": ...}}.
    """

    backbone: nn.Module  # __call__(x, train) -> pooled features (N, C)
    head: nn.Module  # __call__(features, train) -> logits

    def features(self, images: jnp.ndarray, train: bool) -> jnp.ndarray:
        """Pooled backbone features (N, C) float32."""
        return self.backbone(images, train).astype(jnp.float32)

    def __call__(self, images: jnp.ndarray, train: bool) -> jnp.ndarray:
        return self.head(self.features(images, train), train).astype(jnp.float32)
