"""Optax optimizers built from the config: optimizer, schedule, clipping, fine-tuning strategy.

`OPTIMIZERS` maps `optim.name` to a builder `(optim config, schedule, steps) -> transformation`
(weight decay included); `make_optimizer` is the one place where the optimizer is assembled:

    clip_by_global_norm (optim.clip_grad_norm > 0)
    -> one builder per parameter group: the head, and each backbone stage when the fine-tuning
       strategy treats stages differently (optax.multi_transform over stage labels; a frozen
       stage keeps its parameters; a stage unfrozen later starts its own optimizer then, with
       the run's schedule and its learning-rate multiplier: the stage's
       `finetune.stage_lr_multipliers` times its layer-wise decay, `optim.layer_decay`).

Weight decay applies to the parameters `optim.weight_decay_mask` selects: `kernels` (the
default) leaves out every parameter of one dimension (biases, normalisation scales and
offsets, NF-ResNet gains) and a ViT's position embeddings and class and register tokens
(`NO_WEIGHT_DECAY`, timm's `no_weight_decay()`), as timm's `param_groups_weight_decay` and
`param_groups_layer_decay` do; `all` decays everything.

`method_name` names what a run's optimizer is: CoolMomentum with a flat schedule is the
published method (the cooling is its only annealing); with any other schedule on top it is
another method, named "CoolMomentum + <schedule>" in results and reports.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import optax

from jaxtl.models import stages_of
from jaxtl.models.vit import NO_WEIGHT_DECAY
from jaxtl.optim.cool_momentum import cool_momentum
from jaxtl.optim.freezing import HEAD, NOTHING_FROZEN, STRATEGIES, FinetunePlan, Frozen
from jaxtl.optim.layer_decay import NO_DECAY
from jaxtl.optim.layer_decay import decay_rule as layer_decay_rule
from jaxtl.optim.schedules import (
    BASE_BATCH,
    GRADUAL_DECAYS,
    NO_BASE_LR,
    SCHEDULES,
    make_schedule,
    peak_lr,
    resolve_lr,
)
from jaxtl.optim.transforms import keep_parameters, start_at, zero_frozen_gradients

# (optim config, learning-rate schedule, steps this optimizer will run) -> optimizer
Builder = Callable[[ml_collections.ConfigDict, optax.Schedule, int], optax.GradientTransformation]
WEIGHT_DECAY_MASKS = ("kernels", "all")
DISPLAY_NAMES = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "cool_momentum": "CoolMomentum"}


def _decayed(path: tuple[Any, ...], parameter: Any) -> bool:
    """Whether `kernels` decays the parameter at `path`: more than one dimension, and not one of
    the names of NO_WEIGHT_DECAY."""
    name = getattr(path[-1], "key", None) if path else None
    return parameter.ndim > 1 and name not in NO_WEIGHT_DECAY


def decay_mask(optim: ml_collections.ConfigDict) -> Callable[[Any], Any] | None:
    """Which parameters weight decay applies to (None: all of them)."""
    if optim.weight_decay_mask == "all":
        return None
    return lambda params: jax.tree_util.tree_map_with_path(_decayed, params)


def _decay(optim: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """Coupled L2: weight_decay * p added to the gradient of the masked parameters."""
    return optax.add_decayed_weights(optim.weight_decay, mask=decay_mask(optim))


def method_name(optim: ml_collections.ConfigDict) -> str:
    """'CoolMomentum' (flat schedule: the published method), 'CoolMomentum + gradual',
    'SGD + gradual', ..."""
    name = DISPLAY_NAMES[optim.name]
    if optim.name == "cool_momentum" and optim.schedule == "flat":
        return name
    return f"{name} + {optim.schedule}"


def _sgd(optim: ml_collections.ConfigDict, lr: optax.Schedule,
         total_steps: int) -> optax.GradientTransformation:
    """SGD with (Nesterov) momentum; weight decay as coupled L2 (added to the gradient)."""
    del total_steps
    return optax.chain(_decay(optim),
                       optax.sgd(lr, momentum=optim.momentum or None, nesterov=optim.nesterov))


def _adam(optim: ml_collections.ConfigDict, lr: optax.Schedule,
          total_steps: int) -> optax.GradientTransformation:
    """Adam; weight decay as coupled L2, as in torch.optim.Adam."""
    del total_steps
    return optax.chain(_decay(optim), optax.adam(lr))


def _adamw(optim: ml_collections.ConfigDict, lr: optax.Schedule,
           total_steps: int) -> optax.GradientTransformation:
    """Adam with decoupled weight decay (Loshchilov and Hutter): p -= lr(t) * wd * p."""
    del total_steps
    return optax.adamw(lr, weight_decay=optim.weight_decay, mask=decay_mask(optim))


def _cool_momentum(optim: ml_collections.ConfigDict, lr: optax.Schedule,
                   total_steps: int) -> optax.GradientTransformation:
    """CoolMomentum; alpha 0 derives the cooling rate from the steps it will run.

    Its learning rate is on another scale than SGD's: the early step is about lr / (1 - rho_0).
    Weight decay is coupled L2, as in the reference implementation.
    """
    return optax.chain(_decay(optim),
                       cool_momentum(lr, rho_0=optim.rho_0, alpha=optim.alpha or None,
                                     total_steps=max(total_steps, 1)))


OPTIMIZERS: dict[str, Builder] = {"sgd": _sgd, "adam": _adam, "adamw": _adamw,
                                  "cool_momentum": _cool_momentum}


@dataclasses.dataclass(frozen=True)
class Optimizer:
    tx: optax.GradientTransformation
    schedule: optax.Schedule  # the head's learning rate at each step (for logging)
    plan: FinetunePlan  # which stages are frozen at which step (`plan.frozen_at(step)`)


def _shifted(schedule: optax.Schedule, start: int, multiplier: float) -> optax.Schedule:
    """The run's schedule seen by an optimizer that starts at step `start`, scaled."""
    if start == 0 and multiplier == 1:
        return schedule
    return lambda count: multiplier * schedule(count + start)


def make_optimizer(config: ml_collections.ConfigDict, steps_per_epoch: int,
                   total_steps: int) -> Optimizer:
    """The run's optimizer from `config.optim`, `config.finetune` and `config.model.arch`."""
    optim = config.optim
    build = OPTIMIZERS[optim.name]
    schedule = make_schedule(optim, steps_per_epoch, total_steps, config.data.batch_size)
    plan = FinetunePlan.from_config(config.finetune, config.model.arch, steps_per_epoch,
                                    optim.layer_decay)
    clip = ([optax.clip_by_global_norm(optim.clip_grad_norm)] if optim.clip_grad_norm > 0
            else [])
    if plan.uniform:
        return Optimizer(optax.chain(*clip, build(optim, schedule, total_steps)), schedule, plan)

    transforms = {HEAD: build(optim, schedule, total_steps)}
    starts: dict[str, int | None] = {HEAD: 0}
    for stage, start, multiplier in zip(plan.stages, plan.start_steps, plan.lr_multipliers):
        if start is None or start >= total_steps:
            transforms[stage.name], starts[stage.name] = keep_parameters(), None
            continue
        transforms[stage.name] = start_at(start, build(
            optim, _shifted(schedule, start, multiplier), total_steps - start))
        starts[stage.name] = start
    if clip:  # the global norm counts the gradients of trainable parameters only
        clip = [zero_frozen_gradients(plan.labels, starts), *clip]
    tx = optax.chain(*clip, optax.multi_transform(transforms, plan.labels))
    return Optimizer(tx, schedule, plan)


__all__ = ["BASE_BATCH", "GRADUAL_DECAYS", "NOTHING_FROZEN", "NO_BASE_LR", "NO_DECAY",
           "NO_WEIGHT_DECAY", "OPTIMIZERS", "SCHEDULES", "STRATEGIES", "WEIGHT_DECAY_MASKS",
           "FinetunePlan", "Frozen", "Optimizer", "decay_mask", "layer_decay_rule",
           "make_optimizer", "method_name", "peak_lr", "resolve_lr", "stages_of"]
