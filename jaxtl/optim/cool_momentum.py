"""CoolMomentum: heavy-ball momentum whose coefficient is annealed to zero.

Borysenko and Byshkin, "CoolMomentum: a method for stochastic optimization by Langevin
dynamics with simulated annealing", Scientific Reports 11, 10705 (2021); reference
implementation github.com/borbysh/coolmomentum (`coolmomentum_tf.py`). With the step t
counted from 0 and x_0 = 0:

    rho_t       = max(0, 1 - (1 - rho_0) / alpha^t)
    x_{t+1}     = rho_t x_t + eta (1 + rho_t) / 2 g_t
    theta_{t+1} = theta_t - x_{t+1}

eta plays the role of dt^2. With alpha = (1 - rho_0)^(1/S) the momentum reaches 0 at step S,
after which the update is plain SGD with learning rate eta / 2; early on the effective step is
about eta / (1 - rho_0), i.e. 100x eta for rho_0 = 0.99, so eta should be set accordingly.

Weight decay as in the PyTorch port (coupled L2) is
`optax.chain(optax.add_decayed_weights(wd), cool_momentum(...))`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax


class CoolMomentumState(NamedTuple):
    """`count` is the step t (int32 scalar); `velocity` is x_t, shaped like the params."""

    count: jax.Array
    velocity: optax.Updates


def _check_rho_0(rho_0: float) -> None:
    if not 0.0 <= rho_0 < 1.0:
        raise ValueError(f"cool_momentum: rho_0 must be in [0, 1), got {rho_0}")


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"cool_momentum: alpha must be in (0, 1] (1 = no cooling), got {alpha}")


def alpha_for(total_steps: int, rho_0: float = 0.99) -> float:
    """The cooling rate (1 - rho_0)^(1/total_steps) that brings rho to 0 at `total_steps`."""
    _check_rho_0(rho_0)
    if total_steps < 1:
        raise ValueError(f"cool_momentum: total_steps must be >= 1, got {total_steps}")
    return (1.0 - rho_0) ** (1.0 / total_steps)


def _cooling_steps(rho_0: float, alpha: float) -> float:
    """S with alpha^S = 1 - rho_0, the step at which rho reaches 0 (inf without cooling)."""
    if alpha == 1.0 or rho_0 == 0.0:
        return math.inf
    return math.log1p(-rho_0) / math.log(alpha)


def _rho(step: jax.typing.ArrayLike, rho_0: float, cooling_steps: float) -> jax.Array:
    # (1 - rho_0) / alpha^t = exp(log(1 - rho_0) (1 - t / S)). Float32 alpha^t is off by
    # percents at t ~ 1e6 (alpha is within 1e-5 of 1), and float32 exp(log(1 - rho_0)
    # - t log(alpha)) leaves rho at up to 5e-7 instead of 0 at t = S for some S; t / S is exactly
    # 1 there (S rounds to the integer total_steps when alpha comes from `alpha_for`).
    t = jnp.asarray(step, jnp.float32)
    progress = 1.0 - t / jnp.float32(cooling_steps)
    rho = 1.0 - jnp.exp(jnp.float32(math.log1p(-rho_0)) * progress)
    return jnp.maximum(rho, 0.0)


def rho_at(step: jax.typing.ArrayLike, rho_0: float, alpha: float) -> jax.Array:
    """The momentum coefficient rho_t (float32) used at step `step` (counted from 0)."""
    _check_rho_0(rho_0)
    _check_alpha(alpha)
    return _rho(step, rho_0, _cooling_steps(rho_0, alpha))


def cool_momentum(learning_rate: float | optax.Schedule, rho_0: float = 0.99,
                  alpha: float | None = None,
                  total_steps: int | None = None) -> optax.GradientTransformation:
    """CoolMomentum as an optax transformation; updates are -x_{t+1}.

    Args:
      learning_rate: eta (= dt^2 in the paper). A schedule is an extension of the paper: the
        gradient term of x_{t+1} uses eta = learning_rate(t), t counted from 0.
      rho_0: the initial momentum coefficient.
      alpha: the cooling rate; takes precedence over `total_steps` when both are given.
      total_steps: S, from which alpha = (1 - rho_0)^(1/S) when `alpha` is None.
    """
    _check_rho_0(rho_0)
    if alpha is None:
        if total_steps is None:
            raise ValueError("cool_momentum needs either alpha (the cooling rate) or total_steps "
                             "(to derive alpha = (1 - rho_0)^(1/total_steps)); got neither")
        alpha = alpha_for(total_steps, rho_0)
    _check_alpha(alpha)
    cooling_steps = _cooling_steps(rho_0, alpha)

    def init_fn(params: optax.Params) -> CoolMomentumState:
        return CoolMomentumState(count=jnp.zeros([], jnp.int32),
                                 velocity=optax.tree_utils.tree_zeros_like(params))

    def update_fn(updates: optax.Updates, state: CoolMomentumState,
                  params: optax.Params | None = None) -> tuple[optax.Updates, CoolMomentumState]:
        del params
        rho = _rho(state.count, rho_0, cooling_steps)
        eta = learning_rate(state.count) if callable(learning_rate) else learning_rate
        scale = jnp.asarray(eta, jnp.float32) * (1.0 + rho) / 2.0
        velocity = jax.tree.map(lambda x, g: (rho * x + scale * g).astype(x.dtype),
                                state.velocity, updates)
        new_updates = jax.tree.map(lambda x, g: (-x).astype(g.dtype), velocity, updates)
        return new_updates, CoolMomentumState(count=optax.safe_increment(state.count),
                                              velocity=velocity)

    return optax.GradientTransformation(init_fn, update_fn)


__all__ = ["CoolMomentumState", "alpha_for", "cool_momentum", "rho_at"]
