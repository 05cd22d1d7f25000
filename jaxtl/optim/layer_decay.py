"""Layer-wise learning-rate decay (BEiT, MAE, RETFound fine-tuning), as timm 1.0's
`param_groups_layer_decay` groups and scales a model's parameters.

Layers are numbered from the input up: 0 the stem (a ViT's patch embedding, class and register
tokens, position embeddings), i + 1 the backbone's block i, and the head is the last layer;
layer k's learning rate is lr * decay ** (last layer - k), so the head trains at lr and each
layer below at `decay` times the one above. Each jaxtl backbone stage
(`jaxtl.models.stages_of`) is one layer: a ViT's blocks are its stages, so its grouping is
timm's; for CNNs and ConvNeXt the resolution stages play the role of blocks (timm numbers their
blocks instead). The final norm goes where timm puts it: a ViT's `norm` (on every token, before
the class token is taken) joins the last block, a norm after the pooling (a ViT's `fc_norm`,
ConvNeXt's head norm) joins the head; every other last stage is a layer of its own.
"""

from __future__ import annotations

import numbers
from typing import Any

from jaxtl import models
from jaxtl.core.settings import allowing
from jaxtl.models.convnext import ConvNeXt
from jaxtl.models.vit import VisionTransformer

NO_DECAY = 1.0  # optim.layer_decay: every layer at the head's learning rate


@allowing("a number above 0, at most 1")
def decay_rule(value: Any) -> str | None:
    """optim.layer_decay's rule: 0 < decay <= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value <= 1:
        return f"is {value!r}; expected a number above 0, at most 1"
    return None


def layer_ids(arch: str) -> tuple[tuple[int, ...], int]:
    """(the layer of each backbone stage from the input up, the head's layer: the last)."""
    count = len(models.stages_of(arch))
    ids = list(range(count))
    backbone = models.create_backbone(arch)  # a module definition: no parameters are made
    if isinstance(backbone, VisionTransformer) and not backbone.config.use_fc_norm:
        ids[-1] = count - 2  # `norm` joins the last block
        return tuple(ids), count - 1
    if isinstance(backbone, (VisionTransformer, ConvNeXt)):
        return tuple(ids), count - 1  # `fc_norm`, ConvNeXt's head norm: with the head
    return tuple(ids), count


def stage_scales(arch: str, decay: float) -> tuple[float, ...]:
    """Each backbone stage's learning-rate factor (the head's is 1): decay ** (head - layer)."""
    ids, head = layer_ids(arch)
    return tuple(float(decay) ** (head - layer) for layer in ids)
