"""Learning-rate schedules, configured in epochs and converted to steps.

Each builder takes the `optim` config section, the peak rate, the steps per epoch and the run's
total steps and returns an optax schedule: step (counted from 0) -> learning rate. The peak is
`peak_lr`: `optim.lr`, or with `optim.base_lr` set, base_lr x data.batch_size / 256 (the linear
scaling rule of Goyal et al. 2017, as MAE's and RETFound's fine-tuning give their rates).

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

from collections.abc import Callable, Collection

import jax.numpy as jnp
import ml_collections
import optax

from jaxtl.core.errors import ConfigError

# (optim config, peak learning rate, steps per epoch, total steps) -> schedule
ScheduleBuilder = Callable[[ml_collections.ConfigDict, float, int, int], optax.Schedule]
GRADUAL_DECAYS = ("cosine", "exponential")
BASE_BATCH = 256  # optim.base_lr is the rate of a batch of this size
NO_BASE_LR = 0.0  # optim.base_lr: optim.lr is the peak


def peak_lr(optim: ml_collections.ConfigDict, batch_size: int) -> float:
    """The run's peak learning rate: optim.lr, or base_lr x batch_size / 256 with base_lr set
    (`batch_size`: data.batch_size, the global batch of one update)."""
    if optim.base_lr > NO_BASE_LR:
        return optim.base_lr * batch_size / BASE_BATCH
    return optim.lr


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


def flat(optim: ml_collections.ConfigDict, peak: float, steps_per_epoch: int,
         total_steps: int) -> optax.Schedule:
    del optim, steps_per_epoch, total_steps
    return optax.constant_schedule(peak)


def gradual(optim: ml_collections.ConfigDict, peak: float, steps_per_epoch: int,
            total_steps: int) -> optax.Schedule:
    """Linear warmup from 0 to lr, then cosine or exponential decay to lr * end_lr_fraction."""
    warmup = _warmup_steps(optim, steps_per_epoch, total_steps)
    end = peak * optim.end_lr_fraction
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


def sudden(optim: ml_collections.ConfigDict, peak: float, steps_per_epoch: int,
           total_steps: int) -> optax.Schedule:
    """lr, multiplied by decay_factor at each of decay_epochs (step decay)."""
    del total_steps
    boundaries: dict[int, float] = {}
    for epoch in optim.decay_epochs:
        step = epochs_to_steps(epoch, steps_per_epoch)
        boundaries[step] = boundaries.get(step, 1.0) * optim.decay_factor
    return optax.piecewise_constant_schedule(peak, boundaries)


def triangular(optim: ml_collections.ConfigDict, peak: float, steps_per_epoch: int,
               total_steps: int) -> optax.Schedule:
    """Cycles of cycle_epochs: linear from lr * min_lr_fraction up to lr and back down."""
    del total_steps
    cycle = max(epochs_to_steps(optim.cycle_epochs, steps_per_epoch), 2)
    low = peak * optim.min_lr_fraction

    def schedule(step):
        phase = jnp.mod(jnp.asarray(step, jnp.int32), cycle).astype(jnp.float32) / cycle
        return low + (peak - low) * (1.0 - jnp.abs(2.0 * phase - 1.0))

    return schedule


def one_cycle(optim: ml_collections.ConfigDict, peak: float, steps_per_epoch: int,
              total_steps: int) -> optax.Schedule:
    """Cosine rise from lr * min_lr_fraction to lr, cosine fall to lr * end_lr_fraction."""
    warmup = _warmup_steps(optim, steps_per_epoch, total_steps)
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


def make_schedule(optim: ml_collections.ConfigDict, steps_per_epoch: int, total_steps: int,
                  batch_size: int) -> optax.Schedule:
    """`batch_size`: data.batch_size, which scales optim.base_lr (`peak_lr`)."""
    return SCHEDULES[optim.schedule](optim, peak_lr(optim, batch_size), steps_per_epoch,
                                     total_steps)


def resolve_lr(config: ml_collections.ConfigDict, set_by_user: Collection[str]) -> None:
    """With optim.base_lr set, writes the peak rate it gives into config.optim.lr (so that
    config.json, results.json and sweep tables record the rate the run uses); refuses
    (ConfigError) an optim.lr the command line set as well (`set_by_user`: its config keys)."""
    optim = config.optim
    if optim.base_lr <= NO_BASE_LR:
        return
    if "optim.lr" in set_by_user:
        raise ConfigError(
            f"config.optim.lr={optim.lr!r} and config.optim.base_lr={optim.base_lr!r} are both "
            f"set; base_lr sets the peak rate (base_lr x data.batch_size / {BASE_BATCH}): give "
            f"one of them")
    optim.lr = peak_lr(optim, config.data.batch_size)
