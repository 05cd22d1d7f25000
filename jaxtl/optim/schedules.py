"""Learning-rate schedules, configured in epochs and converted to steps.

Each builder takes the `optim` config section, the steps per epoch and the run's total steps and
returns an optax schedule: step (counted from 0) -> learning rate. `optim.lr` is always the peak.

- flat: lr throughout.
- gradual: linear warmup from 0 to lr over `warmup_epochs`, then `gradual_decay` to
  lr * `end_lr_fraction` at the last step: `cosine` (half a cosine wave) or `exponential`
  (a constant factor per step).
- sudden: step decay; lr is multiplied by `decay_factor` at each of `decay_epochs`.
- triangular: cyclic learning rate (Smith 2017, "triangular" policy): each cycle of
  `cycle_epochs` rises linearly from lr * `min_lr_fraction` to lr and falls back.
- one_cycle: one cycle over the run (Smith and Topin 2019, as torch's OneCycleLR with cosine
  annealing): a cosine rise from lr * `min_lr_fraction` to lr over `warmup_epochs`, then a cosine
  fall to lr * `end_lr_fraction` at the last step.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import ml_collections
import optax

ScheduleBuilder = Callable[[ml_collections.ConfigDict, int, int], optax.Schedule]
GRADUAL_DECAYS = ("cosine", "exponential")


def epochs_to_steps(epochs: float, steps_per_epoch: int) -> int:
    return round(epochs * steps_per_epoch)


def _warmup_steps(optim: ml_collections.ConfigDict, steps_per_epoch: int,
                  total_steps: int) -> int:
    # at least one step is left after the warmup, so the peak is reached within the run
    return min(epochs_to_steps(optim.warmup_epochs, steps_per_epoch), max(total_steps - 1, 0))


def _progress(step: jnp.ndarray, begin: int, end: int) -> jnp.ndarray:
    """0 at `begin`, 1 at `end` and after, clipped."""
    t = jnp.asarray(step, jnp.float32)
    return jnp.clip((t - begin) / max(end - begin, 1), 0.0, 1.0)


def _cosine(start: float, end: float, progress: jnp.ndarray) -> jnp.ndarray:
    """From `start` at progress 0 to `end` at progress 1 along half a cosine wave."""
    return end + (start - end) * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))


def flat(optim: ml_collections.ConfigDict, steps_per_epoch: int,
         total_steps: int) -> optax.Schedule:
    del steps_per_epoch, total_steps
    return optax.constant_schedule(optim.lr)


def gradual(optim: ml_collections.ConfigDict, steps_per_epoch: int,
            total_steps: int) -> optax.Schedule:
    """Linear warmup from 0 to lr, then cosine or exponential decay to lr * end_lr_fraction."""
    warmup = _warmup_steps(optim, steps_per_epoch, total_steps)
    peak, end = optim.lr, optim.lr * optim.end_lr_fraction
    decay = optim.gradual_decay

    def schedule(step):
        t = jnp.asarray(step, jnp.float32)
        rising = peak * t / max(warmup, 1)
        progress = _progress(step, warmup, total_steps)
        if decay == "cosine":
            falling = _cosine(peak, end, progress)
        else:  # exponential: peak * (end / peak) ** progress
            falling = peak * jnp.power(optim.end_lr_fraction, progress)
        return jnp.where(t < warmup, rising, falling)

    return schedule


def sudden(optim: ml_collections.ConfigDict, steps_per_epoch: int,
           total_steps: int) -> optax.Schedule:
    """lr, multiplied by decay_factor at each of decay_epochs (step decay)."""
    del total_steps
    boundaries: dict[int, float] = {}
    for epoch in optim.decay_epochs:
        step = epochs_to_steps(epoch, steps_per_epoch)
        boundaries[step] = boundaries.get(step, 1.0) * optim.decay_factor
    return optax.piecewise_constant_schedule(optim.lr, boundaries)


def triangular(optim: ml_collections.ConfigDict, steps_per_epoch: int,
               total_steps: int) -> optax.Schedule:
    """Cycles of cycle_epochs: linear from lr * min_lr_fraction up to lr and back down."""
    del total_steps
    cycle = max(epochs_to_steps(optim.cycle_epochs, steps_per_epoch), 2)
    peak, low = optim.lr, optim.lr * optim.min_lr_fraction

    def schedule(step):
        phase = jnp.mod(jnp.asarray(step, jnp.int32), cycle).astype(jnp.float32) / cycle
        return low + (peak - low) * (1.0 - jnp.abs(2.0 * phase - 1.0))

    return schedule


def one_cycle(optim: ml_collections.ConfigDict, steps_per_epoch: int,
              total_steps: int) -> optax.Schedule:
    """Cosine rise from lr * min_lr_fraction to lr, cosine fall to lr * end_lr_fraction."""
    warmup = _warmup_steps(optim, steps_per_epoch, total_steps)
    peak = optim.lr
    start, end = peak * optim.min_lr_fraction, peak * optim.end_lr_fraction

    def schedule(step):
        rising = _cosine(start, peak, _progress(step, 0, warmup))
        falling = _cosine(peak, end, _progress(step, warmup, total_steps))
        return jnp.where(jnp.asarray(step) < warmup, rising, falling)

    return schedule


SCHEDULES: dict[str, ScheduleBuilder] = {
    "flat": flat,
    "gradual": gradual,
    "sudden": sudden,
    "triangular": triangular,
    "one_cycle": one_cycle,
}


def make_schedule(optim: ml_collections.ConfigDict, steps_per_epoch: int,
                  total_steps: int) -> optax.Schedule:
    return SCHEDULES[optim.schedule](optim, steps_per_epoch, total_steps)
