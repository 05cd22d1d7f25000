"""Learning-rate schedules, configured in epochs and converted to steps."""

from __future__ import annotations

from collections.abc import Callable

import ml_collections
import optax


def flat(optim: ml_collections.ConfigDict, steps_per_epoch: int,
         total_steps: int) -> optax.Schedule:
    del steps_per_epoch, total_steps
    return optax.constant_schedule(optim.lr)


def gradual(optim: ml_collections.ConfigDict, steps_per_epoch: int,
            total_steps: int) -> optax.Schedule:
    """Linear warmup from 0 to lr over warmup_epochs, then cosine decay to 0 at the end."""
    warmup = min(round(optim.warmup_epochs * steps_per_epoch), max(total_steps - 1, 0))
    return optax.warmup_cosine_decay_schedule(init_value=0.0, peak_value=optim.lr,
                                              warmup_steps=warmup, decay_steps=total_steps,
                                              end_value=0.0)


def sudden(optim: ml_collections.ConfigDict, steps_per_epoch: int,
           total_steps: int) -> optax.Schedule:
    """lr, multiplied by decay_factor at each of decay_epochs (step decay)."""
    del total_steps
    boundaries: dict[int, float] = {}
    for epoch in optim.decay_epochs:
        step = round(epoch * steps_per_epoch)
        boundaries[step] = boundaries.get(step, 1.0) * optim.decay_factor
    return optax.piecewise_constant_schedule(optim.lr, boundaries)


SCHEDULES: dict[str, Callable[[ml_collections.ConfigDict, int, int], optax.Schedule]] = {
    "flat": flat,
    "gradual": gradual,
    "sudden": sudden,
}
