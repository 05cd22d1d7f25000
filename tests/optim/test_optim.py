"""Optimizers and schedules against their textbook formulas."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import eyepacs
from jaxtl import optim


def optim_config(**values):
    config = eyepacs.get_config().optim
    for key, value in values.items():
        config[key] = value
    return config


def test_flat_schedule_is_constant():
    _, schedule = optim.make_optimizer(optim_config(schedule="flat", lr=0.3), 10, 100)
    assert [float(schedule(s)) for s in (0, 50, 99)] == pytest.approx([0.3] * 3)


def test_gradual_is_linear_warmup_then_cosine_to_zero():
    _, schedule = optim.make_optimizer(
        optim_config(schedule="gradual", lr=0.2, warmup_epochs=2.0), 10, 100)
    assert float(schedule(0)) == pytest.approx(0.0)
    assert float(schedule(10)) == pytest.approx(0.1)
    assert float(schedule(20)) == pytest.approx(0.2)
    progress = (60 - 20) / 80
    assert float(schedule(60)) == pytest.approx(0.1 * (1 + math.cos(math.pi * progress)))
    assert float(schedule(100)) == pytest.approx(0.0, abs=1e-9)


def test_sudden_multiplies_by_factor_at_each_epoch():
    _, schedule = optim.make_optimizer(
        optim_config(schedule="sudden", lr=0.1, decay_epochs=(3, 6), decay_factor=0.5), 10, 100)
    values = [float(schedule(s)) for s in (0, 29, 30, 59, 60, 99)]
    assert values == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])


def one_step(name, **values):
    tx, _ = optim.make_optimizer(optim_config(name=name, schedule="flat", **values), 10, 100)
    params = {"w": jnp.array([1.0, -2.0])}
    grads = {"w": jnp.array([0.5, 0.25])}
    state = tx.init(params)
    updates, state = tx.update(grads, state, params)
    updates, _ = tx.update(grads, state, optax.apply_updates(params, updates))
    return params, grads, updates


def test_sgd_nesterov_with_coupled_weight_decay():
    params, grads, updates = one_step("sgd", lr=0.1, momentum=0.9, nesterov=True,
                                      weight_decay=0.0)
    g = np.array([0.5, 0.25])
    # torch-style Nesterov: v1 = g, v2 = 0.9 g + g; step 2 update = -lr (g + 0.9 v2)
    np.testing.assert_allclose(updates["w"], -0.1 * (g + 0.9 * (0.9 * g + g)), rtol=1e-6)
    _, _, decayed = one_step("sgd", lr=0.1, momentum=0.0, nesterov=False, weight_decay=0.1)
    w1 = np.array([1.0, -2.0]) - 0.1 * (g + 0.1 * np.array([1.0, -2.0]))
    np.testing.assert_allclose(decayed["w"], -0.1 * (g + 0.1 * w1), rtol=1e-6)


def test_adam_first_step_is_lr_times_sign():
    tx, _ = optim.make_optimizer(optim_config(name="adam", schedule="flat", lr=0.01,
                                              weight_decay=0.0), 10, 100)
    params = {"w": jnp.array([1.0, -2.0])}
    updates, _ = tx.update({"w": jnp.array([0.5, -3.0])}, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], [-0.01, 0.01], rtol=1e-4)


def test_adamw_decay_is_decoupled():
    tx, _ = optim.make_optimizer(optim_config(name="adamw", schedule="flat", lr=0.01,
                                              weight_decay=0.5), 10, 100)
    params = {"w": jnp.array([2.0])}
    updates, _ = tx.update({"w": jnp.array([1.0])}, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], [-0.01 * (1.0 + 0.5 * 2.0)], rtol=1e-4)


def test_cool_momentum_from_config_cools_over_the_whole_run():
    tx, _ = optim.make_optimizer(optim_config(name="cool_momentum", schedule="flat", lr=0.01,
                                              rho_0=0.99, alpha=0.0, weight_decay=0.0), 5, 20)
    params = {"w": jnp.array([1.0])}
    state = tx.init(params)
    updates = []
    for _ in range(21):
        update, state = tx.update({"w": jnp.array([1.0])}, state, params)
        updates.append(float(update["w"][0]))
    # rho_0 at the first step: x1 = lr (1 + rho_0) / 2 g; after S = 20 steps rho is 0 and the
    # update is lr / 2 * g.
    assert updates[0] == pytest.approx(-0.01 * 1.99 / 2)
    assert updates[20] == pytest.approx(-0.01 / 2, rel=1e-5)
