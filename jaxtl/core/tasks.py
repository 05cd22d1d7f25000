"""What a model predicts, how it is trained and how its outputs become scores.

Two kinds of task:
- `multiclass`: one class per image (EyePACS grades, CoNSeP nucleus types). `Record.label` is
  the class index; the model has one logit per class; softmax cross-entropy.
- `multilabel`: several binary findings per image (chest X-rays, BigEarthNet). `Record.label`
  is a tuple with one value per label: POSITIVE (1), NEGATIVE (0), MASKED (-1: unknown or
  ignored, left out of loss and metrics) or UNCERTAIN (2, only for labels trained three-way).
  A binary label has one logit (sigmoid cross-entropy). A three-way label (the CheXpert
  U-MultiClass policy) has three logits (negative, positive, uncertain; softmax
  cross-entropy) and is scored p1 / (p0 + p1).
  A hierarchical task names each label's parent: a child's loss counts only where its parent
  is positive (the child is trained conditionally), and its score is the product of the
  conditional probabilities along the path from the root.

The loss is the mean over the counted (image, label) entries of the global batch.

Class imbalance (`loss_weights`, from `balanced_weights` on the training labels): a softmax
task may weigh each class (`train.class_weights`: the loss is sum w_y CE / sum w_y, torch's
weighted cross-entropy); a multi-label task may weigh the positive entries of each label
(`train.positive_weights`: -[w y log s(z) + (1 - y) log(1 - s(z))] as torch's
BCEWithLogitsLoss `pos_weight`; a three-way label's positive entries weigh w). Evaluation
never uses them: the `loss` of the metrics is always unweighted.

Mixup and CutMix (`Mix`, jaxtl.data.device_augment) train on soft targets: each image's target
is lam x its own (smoothed) target + (1 - lam) x its partner's, as timm's `mixup_target`; a
class weight or a three-way label's positive weight mixes the same way. A multi-label entry
counts where it counts for both images (a masked label of either leaves it out), and an image
counts where both images are valid. Without a Mix the loss is the hard-label loss unchanged.

A third kind, `SegmentationTask` (kind "segmentation"), predicts a class per pixel (CoNSeP
nucleus types plus background): `Record.label` is unused (the dataset's crops carry the
per-pixel labels), the model has one logit per class at every pixel, and the loss is
cross-entropy plus soft Dice (`SegmentationTask.mean_loss`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy.special import expit, softmax

MASKED, NEGATIVE, POSITIVE, UNCERTAIN = -1, 0, 1, 2
KINDS = ("multiclass", "multilabel")
SEGMENTATION = "segmentation"  # SegmentationTask.kind


class Mix(NamedTuple):
    """What each image of a mixed batch was mixed with: its own target weighs `lam` (a
    scalar), its partner's `labels` 1 - lam; `valid`: whether the partner is a real image."""

    lam: jax.Array
    labels: jax.Array
    valid: jax.Array


def _mixed(value: Callable[[jax.Array], jax.Array], labels: jax.Array,
           mix: Mix | None) -> jax.Array:
    """`value(labels)`, or with a mix lam value(labels) + (1 - lam) value(partner's labels)."""
    if mix is None:
        return value(labels)
    return mix.lam * value(labels) + (1.0 - mix.lam) * value(mix.labels)


# Multi-label, per label `index` of every image: whether it counts (three-way: known; binary:
# positive or negative), whether it is positive, its (smoothed) target, a positive's weight.
def _known(labels: jax.Array, index: int) -> jax.Array:
    return labels[:, index] >= 0


def _binary(labels: jax.Array, index: int) -> jax.Array:
    return (labels[:, index] == POSITIVE) | (labels[:, index] == NEGATIVE)


def _positive(labels: jax.Array, index: int) -> jax.Array:
    return labels[:, index] == POSITIVE


def _binary_target(labels: jax.Array, index: int, smoothing: float) -> jax.Array:
    return labels[:, index].astype(jnp.float32) * (1.0 - smoothing) + 0.5 * smoothing


def _three_way_target(labels: jax.Array, index: int, smoothing: float) -> jax.Array:
    return optax.smooth_labels(jax.nn.one_hot(jnp.clip(labels[:, index], 0, 2), 3), smoothing)


def _positive_factor(labels: jax.Array, index: int, weight: jax.Array) -> jax.Array:
    return jnp.where(labels[:, index] == POSITIVE, weight, 1.0)


def _both(counted: Callable[[jax.Array], jax.Array], labels: jax.Array,
          mix: Mix | None) -> jax.Array:
    """`counted(labels)`, and with a mix also counted for the partner."""
    return counted(labels) if mix is None else counted(labels) & counted(mix.labels)


@dataclasses.dataclass(frozen=True)
class Task:
    kind: str
    names: tuple[str, ...]  # class names (multiclass) or label names (multilabel)
    three_way: tuple[bool, ...] = ()  # multilabel: per label, trained as neg/pos/uncertain
    parents: tuple[int, ...] = ()  # multilabel: per label, index of its parent label or -1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown task kind {self.kind!r}; known kinds: {KINDS}")
        if not self.names:
            raise ValueError("a task needs at least one class or label")
        if self.kind == "multiclass":
            if self.three_way or self.parents:
                raise ValueError("three_way and parents apply to multilabel tasks only")
            if len(self.names) < 2:
                raise ValueError("a multiclass task needs at least two classes")
            return
        if not self.three_way:
            object.__setattr__(self, "three_way", (False,) * len(self.names))
        if not self.parents:
            object.__setattr__(self, "parents", (-1,) * len(self.names))
        if len(self.three_way) != len(self.names) or len(self.parents) != len(self.names):
            raise ValueError("three_way and parents need one entry per label")
        for index in range(len(self.names)):
            self.path(index)  # raises on a cycle or a bad index
        if self.hierarchical and any(self.three_way):
            raise ValueError("a hierarchical task trains binary labels only; three-way "
                             "(U-MultiClass) labels cannot be combined with a hierarchy")

    @property
    def multilabel(self) -> bool:
        return self.kind == "multilabel"

    @property
    def hierarchical(self) -> bool:
        return any(parent >= 0 for parent in self.parents)

    @property
    def num_outputs(self) -> int:
        if not self.multilabel:
            return len(self.names)
        return sum(3 if three else 1 for three in self.three_way)

    @property
    def label_shape(self) -> tuple[int, ...]:
        return (len(self.names),) if self.multilabel else ()

    def path(self, index: int) -> list[int]:
        """The label and its ancestors, the label first."""
        path = [index]
        while (parent := self.parents[path[-1]]) >= 0:
            if parent >= len(self.names) or parent in path:
                raise ValueError(f"label {self.names[index]!r} has an invalid parent chain")
            path.append(parent)
        return path

    def output_slices(self) -> list[slice]:
        """Which logits belong to each label (multilabel)."""
        slices, start = [], 0
        for three in self.three_way:
            width = 3 if three else 1
            slices.append(slice(start, start + width))
            start += width
        return slices

    # --- training (jnp, inside jit) -----------------------------------------------------------
    def loss_terms(self, logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0,
                   loss_weights: Sequence[float] | None = None,
                   mix: Mix | None = None) -> tuple[jax.Array, jax.Array]:
        """(summed loss, counted weight) per example; both shape (N,). `loss_weights`: per
        class (softmax) or per label's positive entries (multi-label); None: all 1. `mix`:
        soft targets of mixed images (see the module doc); None: the labels' own."""
        logits = logits.astype(jnp.float32)
        if not self.multilabel:
            targets = _mixed(lambda y: optax.smooth_labels(jax.nn.one_hot(y, len(self.names)),
                                                           label_smoothing), labels, mix)
            loss = optax.softmax_cross_entropy(logits, targets)
            if loss_weights is None:
                return loss, jnp.ones(labels.shape[0], jnp.float32)
            weight = _mixed(lambda y: jnp.asarray(loss_weights, jnp.float32)[y], labels, mix)
            return weight * loss, weight
        positive_weights = (jnp.ones(len(self.names), jnp.float32) if loss_weights is None
                            else jnp.asarray(loss_weights, jnp.float32))
        total = jnp.zeros(logits.shape[0], jnp.float32)
        count = jnp.zeros(logits.shape[0], jnp.float32)
        for index, (columns, three) in enumerate(zip(self.output_slices(), self.three_way)):
            if three:
                counted = _both(functools.partial(_known, index=index), labels, mix)
                targets = _mixed(functools.partial(_three_way_target, index=index,
                                                   smoothing=label_smoothing), labels, mix)
                loss = optax.softmax_cross_entropy(logits[:, columns], targets)
                loss *= _mixed(functools.partial(_positive_factor, index=index,
                                                 weight=positive_weights[index]), labels, mix)
            else:
                counted = _both(functools.partial(_binary, index=index), labels, mix)
                soft = _mixed(functools.partial(_binary_target, index=index,
                                                smoothing=label_smoothing), labels, mix)
                z = logits[:, columns.start]
                loss = -(positive_weights[index] * soft * jax.nn.log_sigmoid(z)
                         + (1.0 - soft) * jax.nn.log_sigmoid(-z))
            if (parent := self.parents[index]) >= 0:
                counted &= _both(functools.partial(_positive, index=parent), labels, mix)
            total += jnp.where(counted, loss, 0.0)
            count += counted.astype(jnp.float32)
        return total, count

    def summed_loss(self, logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0,
                    loss_weights: Sequence[float] | None = None,
                    valid: jax.Array | None = None,
                    mix: Mix | None = None) -> tuple[jax.Array, jax.Array]:
        """(weighted loss, counted weight), each summed over the batch: `mean_loss` is their
        ratio, and gradient accumulation adds them up over micro-batches. Examples where
        `valid` is False (a skipped image's blank stand-in) count for nothing. `mix`: see
        `loss_terms` (a mixed pair counts where both its images are valid)."""
        total, count = self.loss_terms(logits, labels, label_smoothing, loss_weights, mix)
        if mix is not None:
            valid = mix.valid if valid is None else valid & mix.valid
        if valid is not None:
            total, count = jnp.where(valid, total, 0.0), jnp.where(valid, count, 0.0)
        return total.sum(), count.sum()

    def mean_loss(self, logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0,
                  loss_weights: Sequence[float] | None = None,
                  valid: jax.Array | None = None, mix: Mix | None = None) -> jax.Array:
        """The weighted mean over the counted entries (`summed_loss`)."""
        total, count = self.summed_loss(logits, labels, label_smoothing, loss_weights, valid,
                                        mix)
        return total / jnp.maximum(count, 1e-12)

    # --- scoring (NumPy, on the host) --------------------------------------------------------
    def scores(self, logits: np.ndarray) -> np.ndarray:
        """Class probabilities (N, C) for multiclass; P(label positive) (N, L) for multilabel."""
        logits = np.asarray(logits, np.float64)
        if not self.multilabel:
            return softmax(logits, axis=-1)
        conditional = np.empty((logits.shape[0], len(self.names)))
        for index, (columns, three) in enumerate(zip(self.output_slices(), self.three_way)):
            if three:
                probs = softmax(logits[:, columns], axis=-1)
                conditional[:, index] = probs[:, 1] / (probs[:, 0] + probs[:, 1])
            else:
                conditional[:, index] = expit(logits[:, columns.start])
        if not self.hierarchical:
            return conditional
        return np.stack([np.prod(conditional[:, self.path(i)], axis=1)
                         for i in range(len(self.names))], axis=1)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Task:
        """The task `task_record` wrote (results.json's "task")."""
        return cls(record["kind"], tuple(record["names"]), tuple(record["three_way"]),
                   tuple(record["parents"]))

    def describe(self) -> str:
        if not self.multilabel:
            return f"{len(self.names)} classes"
        extras = []
        if any(self.three_way):
            extras.append(f"{sum(self.three_way)} three-way")
        if self.hierarchical:
            extras.append("hierarchical")
        return f"{len(self.names)} labels" + (f" ({', '.join(extras)})" if extras else "")


def counted_entries(task: Task, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Multi-label: (positive, counted) per (image, label) as the loss counts them (a child
    only where its parent is positive)."""
    labels = np.asarray(labels)
    counted = (labels == POSITIVE) | (labels == NEGATIVE) | (
        (labels == UNCERTAIN) & np.asarray(task.three_way, bool))
    for index, parent in enumerate(task.parents):
        if parent >= 0:
            counted[:, index] &= labels[:, parent] == POSITIVE
    return (labels == POSITIVE) & counted, counted


def balanced_weights(task: Task, labels: np.ndarray) -> np.ndarray:
    """Loss weights from the training labels: per class n / (classes present * n_class) for a
    softmax task (scikit-learn's "balanced"; a class absent from training gets 1); per label
    negatives / positives among the counted entries for a multi-label task (1 for a label
    with no positive or no negative)."""
    labels = np.asarray(labels)
    if not task.multilabel:
        from sklearn.utils.class_weight import compute_class_weight

        weights = np.ones(len(task.names))
        present = np.unique(labels)
        weights[present] = compute_class_weight("balanced", classes=present, y=labels)
        return weights
    positive, counted = counted_entries(task, labels)
    positives = positive.sum(axis=0)
    negatives = counted.sum(axis=0) - positives
    return np.where((positives > 0) & (negatives > 0), negatives / np.maximum(positives, 1), 1.0)


def multiclass(names: Sequence[str]) -> Task:
    return Task("multiclass", tuple(names))


def multilabel(names: Sequence[str], three_way: Sequence[bool] = (),
               parents: Sequence[int] = ()) -> Task:
    return Task("multilabel", tuple(names), tuple(three_way), tuple(parents))


@dataclasses.dataclass(frozen=True)
class SegmentationTask:
    """A class per pixel: `names[0]` is the background, the others are foreground classes
    (nucleus types, or one 'nucleus'). Nucleus vs background is read from the same output:
    P(nucleus) = 1 - P(background).

    Loss per batch: `ce_weight` x the mean softmax cross-entropy over the pixels of the valid
    crops + `dice_weight` x the soft Dice loss, 1 - the mean over classes of
    (2 sum p_c y_c + 1) / (sum p_c + sum y_c + 1), sums over every pixel of the valid crops of
    the global batch (the +1 keeps a class absent from the batch and not predicted at ~0 loss).
    """

    names: tuple[str, ...]
    ce_weight: float = 1.0
    dice_weight: float = 1.0
    kind: str = SEGMENTATION
    three_way: tuple[bool, ...] = ()  # the fields results.json records of every task
    parents: tuple[int, ...] = ()

    multilabel = False
    hierarchical = False
    label_shape: tuple[int, ...] = ()  # of Record.label (unused: crops carry pixel labels)

    def __post_init__(self) -> None:
        if len(self.names) < 2:
            raise ValueError("a segmentation task needs the background and at least one class")
        if self.ce_weight < 0 or self.dice_weight < 0 or self.ce_weight + self.dice_weight <= 0:
            raise ValueError("ce_weight and dice_weight must be >= 0, not both 0")

    @property
    def num_outputs(self) -> int:
        return len(self.names)

    def mean_loss(self, logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0,
                  loss_weights: Sequence[float] | None = None,
                  valid: jax.Array | None = None, mix: Mix | None = None) -> jax.Array:
        """logits (N, H, W, C), labels (N, H, W) class indices; `loss_weights` per class
        weigh the cross-entropy (sum w_y CE / sum w_y); `valid` (N,) False: left out. No
        mixup (`mix`): the config refuses it for segmentation."""
        if mix is not None:
            raise ValueError("segmentation trains without mixup or cutmix")
        logits = logits.astype(jnp.float32)
        onehot = jax.nn.one_hot(labels, len(self.names))
        counted = jnp.ones(labels.shape, jnp.float32)
        if valid is not None:
            counted = counted * valid.astype(jnp.float32)[:, None, None]
        weight = (counted if loss_weights is None
                  else counted * jnp.asarray(loss_weights, jnp.float32)[labels])
        ce = optax.softmax_cross_entropy(logits, optax.smooth_labels(onehot, label_smoothing))
        ce = (weight * ce).sum() / jnp.maximum(weight.sum(), 1e-12)
        probs = jax.nn.softmax(logits, axis=-1) * counted[..., None]
        onehot = onehot * counted[..., None]
        overlap = (probs * onehot).sum(axis=(0, 1, 2))
        dice = (2 * overlap + 1.0) / (probs.sum(axis=(0, 1, 2)) + onehot.sum(axis=(0, 1, 2)) + 1.0)
        return self.ce_weight * ce + self.dice_weight * (1.0 - dice.mean())

    def scores(self, logits: np.ndarray) -> np.ndarray:
        """Class probabilities per pixel (..., C)."""
        return softmax(np.asarray(logits, np.float64), axis=-1)

    def describe(self) -> str:
        return f"{len(self.names) - 1} classes + background per pixel"


def task_record(task: Task | SegmentationTask) -> dict[str, Any]:
    """A task as results.json keeps it ("task"; `Task.from_record` reads a classification
    task back)."""
    return {"kind": task.kind, "names": list(task.names), "three_way": list(task.three_way),
            "parents": list(task.parents)}


def segmentation(names: Sequence[str], *, ce_weight: float = 1.0,
                 dice_weight: float = 1.0) -> SegmentationTask:
    return SegmentationTask(tuple(names), ce_weight, dice_weight)
