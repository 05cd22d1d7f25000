"""Attention rollout (Abnar & Zuidema 2020) of a Vision Transformer's attention weights.

Per block l, the attention weights (heads, T, T) over all T tokens are averaged over the heads,
the identity is added (the residual connection) and every row is renormalised to sum to one:
A_l = (mean_heads W_l + I) / rowsum. The rollout multiplies them from the first block up,
R = A_L ... A_2 A_1, so that R[i, j] is how much of token i after the last block flows from
input token j. The map is the row of what the classifier pools over the patch tokens: the class
token's row (`global_pool="token"`), or, for `global_pool="avg"` models (MAE, RETFound), which
pool the patch tokens, the mean of the patch tokens' rows. Of that row the patch tokens'
columns are kept (class and register tokens removed; they stay in the product, since attention
flows through them), reshaped to the patch grid (h, w), as a Grad-CAM map on the token grid.

The map is the same for every target (rollout does not depend on the class explained); it is
returned once per target so that the files keep their (images, targets, h, w) layout. The
attention weights come out of the backbone as named features (`models.taps.attention`) only
when rollout asks for them (`with_attention`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxtl import models
from jaxtl.models.taps import STEM, attention
from jaxtl.models.vit import VisionTransformer, ViTConfig


def with_attention(model: nn.Module, arch: str) -> nn.Module:
    """`model` (a Classifier) whose ViT backbone also returns its attention weights; a
    ValueError for any other backbone."""
    backbone = getattr(model, models.BACKBONE)
    if not isinstance(backbone, VisionTransformer):
        raise ValueError(f"attention rollout needs a Vision Transformer; {arch} has no "
                         f"attention layers (use --method gradcam or integrated_gradients)")
    return model.clone(**{models.BACKBONE: backbone.clone(attention_features=True)})


def attention_rollout(attentions: Sequence[jax.Array], config: ViTConfig,
                      grid: tuple[int, int]) -> jax.Array:
    """Rollout maps (B, h, w) float32 from each block's attention weights (B, heads, T, T),
    first block first (see the module doc)."""
    flow = None
    for weights in attentions:
        mixed = jnp.mean(weights.astype(jnp.float32), axis=1)
        mixed = mixed + jnp.eye(mixed.shape[-1], dtype=jnp.float32)
        mixed = mixed / jnp.sum(mixed, axis=-1, keepdims=True)
        flow = mixed if flow is None else jnp.einsum("bij,bjk->bik", mixed, flow)
    prefix = config.num_prefix_tokens
    if config.global_pool == "avg":
        row = jnp.mean(flow[:, prefix:, prefix:], axis=1)
    else:
        row = flow[:, 0, prefix:]
    return row.reshape(row.shape[0], *grid)


def rollout(model: nn.Module, variables: Any, images: jax.Array, targets_count: int
            ) -> tuple[jax.Array, jax.Array]:
    """(maps (B, targets_count, h, w) float32 on the patch grid, logits (B, outputs)) of a
    model made by `with_attention`."""
    backbone = getattr(model, models.BACKBONE)
    logits, out = model.apply(variables, images, train=False)
    config = backbone.config
    attentions = [out[attention(i)] for i in range(config.depth)]
    maps = attention_rollout(attentions, config, tuple(out[STEM].shape[1:3]))
    return jnp.broadcast_to(maps[:, None], (maps.shape[0], targets_count, *maps.shape[1:])), logits
