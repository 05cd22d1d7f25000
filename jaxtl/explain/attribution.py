"""Attribution maps of a classifier's target scores: Grad-CAM and integrated gradients.

Both run inside `jax.jit` on a batch of images and explain T targets per image at once.

Target score. What is explained is a linear function of the logits, `score = sum_o s_o *
logit_o`, with one selector row s per image and target (`Targets.selectors`): a class's logit
(multiclass), a binary label's logit, or a three-way label's positive minus negative logit (the
log-odds its score p1 / (p0 + p1) is made of).

Grad-CAM (Selvaraju et al. 2017) at a named feature map of the backbone (jaxtl/models/taps.py):
with A that feature (h, w, K) and G = d score / d A, the map is ReLU(sum_k mean_hw(G_k) A_k), at
the feature's resolution h x w. G is the gradient with respect to a zero perturbation that the
backbone adds to A (`models.perturbations`). By default A is the Grad-CAM stage's output after
its activation (`models.gradcam_feature`), the layer pytorch-grad-cam users target on timm's
models (DenseNet's `norm5`, EfficientNet's `bn2`: BatchNorm with its activation).

Integrated gradients (Sundararajan et al. 2017). Baseline: the model input 0, i.e. every pixel
at `data.mean` (a flat image of the dataset's mean colour: the normalised image's zero, so it
carries no pattern). Attributions (x - x0) * integral_0^1 d score / dx (x0 + a (x - x0)) da,
the integral by the trapezoidal rule over `steps` equal intervals (steps + 1 gradients; 64 by
default). By completeness they sum to score(x) - score(x0) up to the rule's error, which is
returned (`completeness_gap`). The map is the positive part of the attributions summed over
channels, at input resolution: the pixels that raise the score, as Grad-CAM's ReLU keeps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxtl import models
from jaxtl.core.tasks import Task

PREDICTED = "predicted"  # multiclass: the class the model predicts
LABEL = "label"  # multiclass: the image's true class
DEFAULT_IG_STEPS = 64


@dataclasses.dataclass(frozen=True)
class Targets:
    """What is explained in every image: T targets, each a row of selectors over the outputs.

    `mode` PREDICTED or LABEL (multiclass, one target per image that depends on the image), or
    None: fixed targets, `fixed` (T, outputs) (a given class; a multilabel task's labels).
    `names` name the targets in files; `indices` are the class or label index of each fixed
    target.
    """

    names: tuple[str, ...]
    mode: str | None = None
    fixed: np.ndarray | None = None  # (T, num_outputs)
    indices: tuple[int, ...] = ()
    num_outputs: int = 0

    @property
    def count(self) -> int:
        return len(self.names)

    def selectors(self, logits: jax.Array, labels: jax.Array) -> jax.Array:
        """(B, T, num_outputs) float32, constant for differentiation."""
        if self.mode == PREDICTED:
            rows = jax.nn.one_hot(jnp.argmax(logits, axis=-1), logits.shape[-1])[:, None]
        elif self.mode == LABEL:
            rows = jax.nn.one_hot(labels, logits.shape[-1])[:, None]
        else:
            rows = jnp.broadcast_to(jnp.asarray(self.fixed, jnp.float32),
                                    (logits.shape[0], *self.fixed.shape))
        return jax.lax.stop_gradient(rows.astype(jnp.float32))

    def explained(self, logits: jax.Array, labels: jax.Array) -> jax.Array:
        """(B, T) int32: the class (multiclass) or label (multilabel) index of each target."""
        if self.mode == PREDICTED:
            return jnp.argmax(logits, axis=-1).astype(jnp.int32)[:, None]
        if self.mode == LABEL:
            return labels.astype(jnp.int32)[:, None]
        return jnp.broadcast_to(jnp.asarray(self.indices, jnp.int32),
                                (logits.shape[0], len(self.indices)))


def class_targets(task: Task, wanted: str | None) -> Targets:
    """Multiclass: PREDICTED (the default), LABEL, or one class by name or index."""
    wanted = wanted or PREDICTED
    if wanted in (PREDICTED, LABEL):
        return Targets((wanted,), mode=wanted, num_outputs=task.num_outputs)
    index = _index_of(task, wanted)
    return Targets((task.names[index],), fixed=np.eye(task.num_outputs)[index:index + 1],
                   indices=(index,), num_outputs=task.num_outputs)


def label_targets(task: Task, wanted: list[str]) -> Targets:
    """Multilabel: each named label (by name or index; all labels when none is named)."""
    indices = [_index_of(task, name) for name in wanted] or list(range(len(task.names)))
    rows = np.zeros((len(indices), task.num_outputs), np.float32)
    for row, index in enumerate(indices):
        columns = task.output_slices()[index]
        if task.three_way[index]:  # logits (negative, positive, uncertain)
            rows[row, columns.start], rows[row, columns.start + 1] = -1.0, 1.0
        else:
            rows[row, columns.start] = 1.0
    return Targets(tuple(task.names[i] for i in indices), fixed=rows, indices=tuple(indices),
                   num_outputs=task.num_outputs)


def _index_of(task: Task, wanted: str) -> int:
    if wanted in task.names:
        return task.names.index(wanted)
    if wanted.isdigit() and int(wanted) < len(task.names):
        return int(wanted)
    kinds = "classes" if not task.multilabel else "labels"
    extra = f", {PREDICTED} or {LABEL}" if not task.multilabel else ""
    raise ValueError(f"{wanted!r} is not one of the task's {kinds} ({', '.join(task.names)}, "
                     f"or their index{extra})")


def _per_target(vjp: Callable, selectors: jax.Array) -> jax.Array:
    """The input cotangent of every target: (T, ...) from selectors (B, T, outputs)."""
    return jax.vmap(lambda rows: vjp(rows)[0], in_axes=1)(selectors)


def feature_map_shape(model: nn.Module, variables: Any, image_shape: tuple[int, ...],
                      feature: str) -> tuple[int, ...]:
    """The shape (N, h, w, K) of the named feature map `feature` for images of `image_shape`,
    traced without computing; a clear error when the model returns no such map."""
    images = jax.ShapeDtypeStruct(image_shape, jnp.float32)
    _, out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, images)
    if feature not in out:
        raise ValueError(f"the model returns no feature {feature!r}; it returns "
                         f"{', '.join(sorted(out))}")
    if out[feature].ndim != 4:
        raise ValueError(f"feature {feature!r} has shape {out[feature].shape}; Grad-CAM needs a "
                         f"feature map (N, h, w, C)")
    return tuple(out[feature].shape)


def gradcam(model: nn.Module, variables: Any, images: jax.Array, feature: str,
            targets: Targets, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(maps (B, T, h, w) float32 at the resolution of the named feature map `feature`,
    logits (B, outputs))."""
    shape = feature_map_shape(model, variables, images.shape, feature)

    def forward(delta: jax.Array) -> tuple[jax.Array, jax.Array]:
        perturbed = {**variables, **models.perturbations(models.BACKBONE, {feature: delta})}
        logits, out = model.apply(perturbed, images, train=False)
        return logits, out[feature]

    delta = jnp.zeros(shape, jnp.float32)
    logits, vjp, activation = jax.vjp(forward, delta, has_aux=True)
    gradients = _per_target(vjp, targets.selectors(logits, labels))  # (T, B, h, w, K)
    weights = jnp.mean(gradients, axis=(2, 3))  # (T, B, K)
    maps = jnp.einsum("bhwk,tbk->bthw", activation.astype(jnp.float32), weights)
    return jax.nn.relu(maps), logits


@flax.struct.dataclass
class IntegratedGradients:
    attributions: jax.Array  # (B, T, H, W, C)
    logits: jax.Array  # (B, outputs) at the images
    completeness_gap: jax.Array  # (B, T): sum of attributions - (score(x) - score(x0))
    score_difference: jax.Array  # (B, T): score(x) - score(x0)

    @property
    def maps(self) -> jax.Array:
        """(B, T, H, W): the positive part of the channel sum."""
        return jax.nn.relu(jnp.sum(self.attributions, axis=-1))


def trapezoid_weights(steps: int) -> np.ndarray:
    """Weights of the trapezoidal rule on [0, 1] at steps + 1 equally spaced points."""
    weights = np.full(steps + 1, 1.0 / steps)
    weights[[0, -1]] /= 2.0
    return weights


def integrated_gradients(model: nn.Module, variables: Any, images: jax.Array, targets: Targets,
                         labels: jax.Array, steps: int = DEFAULT_IG_STEPS) -> IntegratedGradients:
    """Attributions of every pixel and channel to each target's score (see the module doc)."""

    def apply(x: jax.Array) -> jax.Array:
        return model.apply(variables, x, train=False)[0]

    logits = apply(images)
    selectors = targets.selectors(logits, labels)
    baseline = jnp.zeros_like(images)

    def accumulate(total: jax.Array, point: tuple[jax.Array, jax.Array]):
        alpha, weight = point
        _, vjp = jax.vjp(apply, baseline + alpha * (images - baseline))
        return total + weight * _per_target(vjp, selectors), None

    alphas = jnp.linspace(0.0, 1.0, steps + 1)
    total, _ = jax.lax.scan(accumulate, jnp.zeros((targets.count, *images.shape), jnp.float32),
                            (alphas, jnp.asarray(trapezoid_weights(steps), jnp.float32)))
    attributions = jnp.moveaxis((images - baseline)[None] * total, 0, 1)  # (B, T, H, W, C)
    score_difference = jnp.einsum("bto,bo->bt", selectors, logits - apply(baseline))
    gap = jnp.sum(attributions, axis=(2, 3, 4)) - score_difference
    return IntegratedGradients(attributions, logits, gap, score_difference)
