"""Optax optimizers built from `config.optim`.

`OPTIMIZERS` maps a config name to a builder `(optim_config, schedule) -> GradientTransformation`;
CoolMomentum is one more entry, and `make_optimizer` is the one place where
the optimizer is assembled, so fine-tuning strategies (parameter masks) wrap its result there.
"""

from __future__ import annotations

from collections.abc import Callable

import ml_collections
import optax

from jaxtl.optim.cool_momentum import cool_momentum
from jaxtl.optim.schedules import SCHEDULES

# (optim config, learning-rate schedule, total steps of the run) -> optimizer
Builder = Callable[[ml_collections.ConfigDict, optax.Schedule, int], optax.GradientTransformation]


def _sgd(optim: ml_collections.ConfigDict, lr: optax.Schedule,
         total_steps: int) -> optax.GradientTransformation:
    """SGD with (Nesterov) momentum; weight decay as coupled L2 (added to the gradient)."""
    del total_steps
    return optax.chain(optax.add_decayed_weights(optim.weight_decay),
                       optax.sgd(lr, momentum=optim.momentum or None, nesterov=optim.nesterov))


def _adam(optim: ml_collections.ConfigDict, lr: optax.Schedule,
          total_steps: int) -> optax.GradientTransformation:
    """Adam; weight decay as coupled L2, as in torch.optim.Adam."""
    del total_steps
    return optax.chain(optax.add_decayed_weights(optim.weight_decay), optax.adam(lr))


def _adamw(optim: ml_collections.ConfigDict, lr: optax.Schedule,
           total_steps: int) -> optax.GradientTransformation:
    """Adam with decoupled weight decay (Loshchilov and Hutter)."""
    del total_steps
    return optax.adamw(lr, weight_decay=optim.weight_decay)


def _cool_momentum(optim: ml_collections.ConfigDict, lr: optax.Schedule,
                   total_steps: int) -> optax.GradientTransformation:
    """CoolMomentum; alpha 0 derives the cooling rate from the run's total steps.

    Its learning rate is on another scale than SGD's: the early step is about lr / (1 - rho_0).
    Weight decay is coupled L2, as in the reference implementation.
    """
    return optax.chain(optax.add_decayed_weights(optim.weight_decay),
                       cool_momentum(lr, rho_0=optim.rho_0, alpha=optim.alpha or None,
                                     total_steps=total_steps))


OPTIMIZERS: dict[str, Builder] = {"sgd": _sgd, "adam": _adam, "adamw": _adamw,
                                  "cool_momentum": _cool_momentum}


def make_optimizer(optim: ml_collections.ConfigDict, steps_per_epoch: int,
                   total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """The optimizer and its learning-rate schedule (returned too, for logging)."""
    schedule = SCHEDULES[optim.schedule](optim, steps_per_epoch, total_steps)
    return OPTIMIZERS[optim.name](optim, schedule, total_steps), schedule


__all__ = ["OPTIMIZERS", "SCHEDULES", "make_optimizer"]
