"""Optax optimizers built from `config.optim`.

`OPTIMIZERS` maps a config name to a builder `(optim_config, schedule) -> GradientTransformation`;
a new optimizer (CoolMomentum) is one more entry, and `make_optimizer` is the one place where
the optimizer is assembled, so fine-tuning strategies (parameter masks) wrap its result there.
"""

from __future__ import annotations

from collections.abc import Callable

import ml_collections
import optax

from jaxtl.optim.schedules import SCHEDULES

Builder = Callable[[ml_collections.ConfigDict, optax.Schedule], optax.GradientTransformation]


def _sgd(optim: ml_collections.ConfigDict, lr: optax.Schedule) -> optax.GradientTransformation:
    """SGD with (Nesterov) momentum; weight decay as coupled L2 (added to the gradient)."""
    return optax.chain(optax.add_decayed_weights(optim.weight_decay),
                       optax.sgd(lr, momentum=optim.momentum or None, nesterov=optim.nesterov))


def _adam(optim: ml_collections.ConfigDict, lr: optax.Schedule) -> optax.GradientTransformation:
    """Adam; weight decay as coupled L2, as in torch.optim.Adam."""
    return optax.chain(optax.add_decayed_weights(optim.weight_decay), optax.adam(lr))


def _adamw(optim: ml_collections.ConfigDict, lr: optax.Schedule) -> optax.GradientTransformation:
    """Adam with decoupled weight decay (Loshchilov and Hutter)."""
    return optax.adamw(lr, weight_decay=optim.weight_decay)


OPTIMIZERS: dict[str, Builder] = {"sgd": _sgd, "adam": _adam, "adamw": _adamw}


def make_optimizer(optim: ml_collections.ConfigDict, steps_per_epoch: int,
                   total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """The optimizer and its learning-rate schedule (returned too, for logging)."""
    schedule = SCHEDULES[optim.schedule](optim, steps_per_epoch, total_steps)
    return OPTIMIZERS[optim.name](optim, schedule), schedule


__all__ = ["OPTIMIZERS", "SCHEDULES", "make_optimizer"]
