"""Small Optax transformations that fine-tuning strategies are assembled from."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


def keep_parameters() -> optax.GradientTransformation:
    """Updates of -0.0: `p + (-0.0)` is `p` bit for bit, -0.0 and NaN included (+0.0 would
    turn a -0.0 parameter into +0.0). No state, so frozen stages cost no optimizer memory."""

    def init_fn(params: optax.Params) -> optax.EmptyState:
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        del params
        return jax.tree.map(lambda u: jnp.full_like(u, -0.0), updates), state

    return optax.GradientTransformation(init_fn, update_fn)


class StartAtState(NamedTuple):
    count: jax.Array  # steps seen, frozen ones included
    inner: Any


def start_at(step: int, inner: optax.GradientTransformation) -> optax.GradientTransformation:
    """`inner` from step `step` on (counted from 0); before, parameters are kept as they are
    and `inner`'s state is not touched, so it starts fresh (its own step count 0) at `step`."""
    if step <= 0:
        return inner
    frozen = keep_parameters()

    def init_fn(params: optax.Params) -> StartAtState:
        return StartAtState(jnp.zeros([], jnp.int32), inner.init(params))

    def update_fn(updates, state, params=None):
        def run(_):
            return inner.update(updates, state.inner, params)

        def hold(_):
            return frozen.update(updates, optax.EmptyState())[0], state.inner

        new_updates, inner_state = jax.lax.cond(state.count >= step, run, hold, None)
        return new_updates, StartAtState(optax.safe_increment(state.count), inner_state)

    return optax.GradientTransformation(init_fn, update_fn)


class CountState(NamedTuple):
    count: jax.Array


def zero_frozen_gradients(labels: Callable[[optax.Params], Any],
                          start_steps: Mapping[str, int | None]) -> optax.GradientTransformation:
    """Zeroes the gradients of leaves whose label has not started training at this step
    (`None`: never), so that a global-norm clip that follows counts trainable leaves only."""

    def init_fn(params: optax.Params) -> CountState:
        del params
        return CountState(jnp.zeros([], jnp.int32))

    def update_fn(updates, state, params=None):
        def gate(update, label):
            start = start_steps[label]
            if start is None:
                return jnp.zeros_like(update)
            if start <= 0:
                return update
            return jnp.where(state.count >= start, update, jnp.zeros_like(update))

        gated = jax.tree.map(gate, updates, labels(updates))
        return gated, CountState(optax.safe_increment(state.count))

    return optax.GradientTransformation(init_fn, update_fn)
