"""Named intermediate features: what every backbone returns beside its pooled features.

A backbone's `__call__(x, train)` returns `(pooled, features)`, as big_vision's models return
`(logits, out)`: `features` maps a name to an intermediate value of the forward pass, so
Grad-CAM, the UNet's skips and the feature probes read them by name and XLA drops those that a
jitted step leaves unused. Names (`feature_names`):
  * STEM: the stem's output (the first stage's output where no stage is called "stem");
  * each fine-tuning stage's name (`Architecture.stages`): the stage's output, a feature map
    (N, h, w, C) in the compute dtype, up to and including the Grad-CAM stage; a stage after
    it (VGG's fc6/fc7 `pre_logits`) is no map on the input's grid and is not returned as one;
  * `activated(stage)` (`<stage>_act`), for the Grad-CAM stage only and only where the stage's
    own feature is taken before its activation (a BatchNorm's output before its ReLU or SiLU,
    as DenseNet's norm5): the stage's output after the activation, the value timm's
    BatchNormAct2d module (`norm5`, `bn2`) gives and pytorch-grad-cam users target. Grad-CAM
    explains it by default (`models.gradcam_feature`); the stage's name keeps the value before
    the activation (the UNet's skip);
  * PRE_LOGITS: the pooled features (N, C) float32, the head's input;
  * `attention(i)` (`attention<i>`), only from a Vision Transformer built with
    `attention_features=True` (jaxtl/models/vit.py): block i's attention weights (N, heads,
    T, T), for attention rollout; no map, and not among `models.feature_names`.
A `Classifier` adds LOGITS.

`tap` records a value and, when the caller passes a perturbation for its name (the
PERTURBATIONS collection, as Flax's `Module.perturb`), adds it there, so that the gradient of
the output with respect to the perturbation is its gradient with respect to the feature
(jaxtl.explain.attribution). Unlike `Module.perturb` it never creates the collection, so
`init` gives only `params` (and `batch_stats`).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax

STEM, PRE_LOGITS, LOGITS = "stem", "pre_logits", "logits"
PERTURBATIONS = "perturbations"
ACTIVATED_SUFFIX = "_act"
ATTENTION_PREFIX = "attention"

Features = dict[str, jax.Array]


def tap(module: nn.Module, features: Features, name: str, value: jax.Array) -> jax.Array:
    """Records `value` as feature `name` of `module` (a backbone, inside its compact method)
    and returns it, plus the perturbation the caller passed for `name`, if any."""
    if module.has_variable(PERTURBATIONS, name):
        value = value + module.get_variable(PERTURBATIONS, name).astype(value.dtype)
    features[name] = value
    return value


def activated(stage: str) -> str:
    """The name of `stage`'s output after its activation, where the stage's own feature is
    taken before it (see the module doc)."""
    return stage + ACTIVATED_SUFFIX


def attention(block: int) -> str:
    """The name of block `block`'s attention weights (see the module doc)."""
    return f"{ATTENTION_PREFIX}{block}"


def perturbations(backbone: str, deltas: dict[str, jax.Array]) -> dict[str, Any]:
    """The variables collection adding `deltas` (feature name -> array) to the features of the
    backbone stored at attribute `backbone` of the applied model."""
    return {PERTURBATIONS: {backbone: dict(deltas)}}
