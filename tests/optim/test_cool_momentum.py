"""CoolMomentum against an independent NumPy transcription of the published update."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import xla_flags

from jaxtl.optim.cool_momentum import CoolMomentumState, alpha_for, cool_momentum, rho_at

SHARDED_SCRIPT = pathlib.Path(__file__).with_name("sharded_cool_momentum.py")


def quadratic(dim: int = 10, seed: int = 0, lo: float = 0.5,
              hi: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """A (SPD, eigenvalues in [lo, hi]) and b of f(θ) = ½θᵀAθ − bᵀθ, in float64."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    return q @ np.diag(np.linspace(lo, hi, dim)) @ q.T, rng.normal(size=dim)


def reference_trajectory(theta0, grad, eta, rho_0, alpha, steps, wd=0.0) -> np.ndarray:
    """Borysenko and Byshkin (2021), step t from 0, float64; returns θ_1 … θ_steps."""
    theta, x, out = np.array(theta0, np.float64), np.zeros_like(theta0, np.float64), []
    for t in range(steps):
        rho = max(0.0, 1.0 - (1.0 - rho_0) / alpha**t)
        g = grad(theta) + wd * theta
        x = rho * x + eta * (1.0 + rho) / 2.0 * g
        theta = theta - x
        out.append(theta)
    return np.stack(out)


def run(tx: optax.GradientTransformation, theta0, grad, steps: int) -> np.ndarray:
    params = {"theta": jnp.asarray(theta0, jnp.float32)}
    state = tx.init(params)

    @jax.jit
    def step(params, state):
        grads = {"theta": grad(params["theta"])}
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    out = []
    for _ in range(steps):
        params, state = step(params, state)
        out.append(np.asarray(params["theta"]))
    return np.stack(out)


def test_trajectory_matches_published_formula():
    a, b = quadratic()
    theta0 = np.random.default_rng(1).normal(size=10)
    eta, rho_0, steps = 0.01, 0.99, 100
    alpha = alpha_for(steps, rho_0)
    expected = reference_trajectory(theta0, lambda th: a @ th - b, eta, rho_0, alpha, steps)
    a32, b32 = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
    got = run(cool_momentum(eta, rho_0, total_steps=steps), theta0, lambda th: a32 @ th - b32,
              steps)
    assert np.abs(expected - theta0).max() > 1.0  # the optimizer did move
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_converges_on_convex_quadratic():
    a, b = quadratic(lo=0.1, hi=1.0)
    theta_star = np.linalg.solve(a, b)

    def gap(theta):
        d = theta - theta_star
        return 0.5 * d @ a @ d  # f(θ) − f(θ*)

    theta0 = np.zeros(10)
    a32, b32 = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
    steps = 1000
    got = run(cool_momentum(0.01, 0.99, total_steps=steps), theta0, lambda th: a32 @ th - b32,
              steps)
    # about 1e-9 in practice; float32 parameters floor it near 1e-12
    assert gap(got[-1].astype(np.float64)) < 1e-7 * gap(theta0)


@pytest.mark.parametrize("rho_0", [0.9, 0.99, 0.999])
# 9, 17, 299_994: float32 exp(log(1 - rho_0) - t log(alpha)) stops a few 1e-7 short of 0 there
@pytest.mark.parametrize("total_steps", [1, 9, 17, 100, 1000, 12_345, 299_994, 1_000_000])
def test_rho_reaches_zero_at_total_steps_and_stays(rho_0, total_steps):
    alpha = alpha_for(total_steps, rho_0)
    assert float(rho_at(0, rho_0, alpha)) == pytest.approx(rho_0, abs=1e-6)
    if total_steps > 1:
        assert float(rho_at(total_steps - 1, rho_0, alpha)) > 0.0
    after = [total_steps, total_steps + 1, 2 * total_steps, 10 * total_steps]
    assert [float(rho_at(t, rho_0, alpha)) for t in after] == [0.0] * 4


def test_rho_float32_matches_float64_formula_up_to_a_million_steps():
    for rho_0, alpha in ((0.99, 0.99997), (0.99, alpha_for(1_000_000, 0.99))):
        steps = np.array([0, 1, 10, 1000, 50_000, 150_000, 153_500, 500_000, 999_999, 1_000_000])
        expected = np.maximum(0.0, 1.0 - (1.0 - rho_0) / alpha ** steps.astype(np.float64))
        got = np.asarray(rho_at(jnp.asarray(steps, jnp.int32), rho_0, alpha))
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)


def test_optimizer_is_plain_sgd_at_half_eta_after_cooling():
    eta, total_steps = 0.1, 20
    tx = cool_momentum(eta, 0.99, total_steps=total_steps)
    params = {"w": jnp.array([1.0, -2.0])}
    grads = {"w": jnp.array([0.5, 0.25])}
    state = tx.init(params)
    for _ in range(total_steps):
        _, state = tx.update(grads, state, params)
    assert int(state.count) == total_steps
    updates, _ = tx.update({"w": jnp.array([3.0, -1.0])}, state, params)
    np.testing.assert_allclose(updates["w"], [-eta / 2 * 3.0, eta / 2 * 1.0], rtol=1e-6)


def test_alpha_from_total_steps():
    for rho_0, total_steps in ((0.99, 100), (0.99, 78_125), (0.9, 1000), (0.0, 10)):
        assert alpha_for(total_steps, rho_0) == pytest.approx((1 - rho_0) ** (1 / total_steps),
                                                              rel=1e-15)
    assert alpha_for(1000, 0.99) ** 1000 == pytest.approx(0.01, rel=1e-12)
    # total_steps=S is the same optimizer as alpha=alpha_for(S)
    a, b = quadratic(seed=2)
    grad = lambda th: jnp.asarray(a, jnp.float32) @ th - jnp.asarray(b, jnp.float32)
    from_steps = run(cool_momentum(0.01, total_steps=50), np.ones(10), grad, 60)
    from_alpha = run(cool_momentum(0.01, alpha=alpha_for(50)), np.ones(10), grad, 60)
    np.testing.assert_array_equal(from_steps, from_alpha)


def test_jit_update_and_state_round_trips_through_pytree():
    tx = cool_momentum(0.01, total_steps=100)
    params = {"dense": {"kernel": jnp.ones((3, 2)), "bias": jnp.zeros(2)}}
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
    state = tx.init(params)
    assert state.count.dtype == jnp.int32 and state.count.shape == ()
    update = jax.jit(tx.update)
    _, state = update(grads, state, params)
    _, state = update(grads, state, params)

    leaves, treedef = jax.tree_util.tree_flatten(state)
    # what a checkpoint restore hands back: host arrays in the same structure
    restored = jax.tree_util.tree_unflatten(treedef, [np.asarray(leaf) for leaf in leaves])
    assert isinstance(restored, CoolMomentumState)
    assert int(restored.count) == 2
    expected_updates, expected_state = update(grads, state, params)
    got_updates, got_state = update(grads, restored, params)
    jax.tree.map(np.testing.assert_array_equal, got_updates, expected_updates)
    jax.tree.map(np.testing.assert_array_equal, got_state, expected_state)


def test_needs_alpha_or_total_steps():
    with pytest.raises(ValueError, match="either alpha .* or total_steps"):
        cool_momentum(0.01)
    with pytest.raises(ValueError, match="rho_0"):
        cool_momentum(0.01, rho_0=1.0, total_steps=10)
    with pytest.raises(ValueError, match="alpha"):
        cool_momentum(0.01, alpha=1.5)


def test_coupled_weight_decay_matches_formula_with_decayed_gradient():
    eta, rho_0, wd, total_steps = 0.05, 0.99, 0.1, 100
    alpha = alpha_for(total_steps, rho_0)
    tx = optax.chain(optax.add_decayed_weights(wd),
                     cool_momentum(eta, rho_0, total_steps=total_steps))
    theta0, g = np.array([1.0, -2.0]), np.array([0.5, 0.25])
    params = {"w": jnp.asarray(theta0, jnp.float32)}
    state = tx.init(params)
    updates, state = tx.update({"w": jnp.asarray(g, jnp.float32)}, state, params)
    np.testing.assert_allclose(updates["w"], -eta * (1 + rho_0) / 2 * (g + wd * theta0),
                               rtol=1e-6)
    # a second step sees the moved parameters in the decay term and the carried velocity
    params = optax.apply_updates(params, updates)
    updates, _ = tx.update({"w": jnp.asarray(g, jnp.float32)}, state, params)
    expected = reference_trajectory(theta0, lambda th: g, eta, rho_0, alpha, 2, wd=wd)
    np.testing.assert_allclose(optax.apply_updates(params, updates)["w"], expected[1], rtol=1e-6)


def test_schedule_gives_eta_at_each_step():
    schedule = optax.linear_schedule(0.02, 0.01, transition_steps=10)
    rho_0, total_steps = 0.99, 10
    alpha = alpha_for(total_steps, rho_0)
    tx = cool_momentum(schedule, rho_0, total_steps=total_steps)
    params, x = {"w": jnp.array([0.0])}, 0.0
    state = tx.init(params)
    for t in range(12):
        g = float(t + 1)
        rho = max(0.0, 1.0 - (1.0 - rho_0) / alpha**t)
        x = rho * x + float(schedule(t)) * (1.0 + rho) / 2.0 * g
        updates, state = tx.update({"w": jnp.array([g])}, state, params)
        np.testing.assert_allclose(updates["w"], [-x], rtol=1e-5)


@pytest.mark.slow
def test_sharded_parameters_and_orbax_checkpoint_follow_the_published_formula(tmp_path):
    """Parameters split over 4 devices, state saved and restored with Orbax at step 17:
    the trajectory is the NumPy one, and parameters and velocity stay sharded alike."""
    root = SHARDED_SCRIPT.parents[2]  # import this checkout's jaxtl, whatever is installed
    env = dict(os.environ, XLA_FLAGS=xla_flags(4),
               JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, str(SHARDED_SCRIPT), str(tmp_path)], env=env,
                            capture_output=True, text=True, timeout=300,
                            cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["devices"] == 4 and out["shards"] == 4
    assert out["restored_count"] == 17
    spec = "('model', None)"
    assert out["shardings"] == sorted(f"{what} {spec}" for what in
                                      ("params", "velocity", "restored velocity"))

    sys.path.insert(0, str(SHARDED_SCRIPT.parent))
    from sharded_cool_momentum import STEPS, problem

    a, b, w0 = problem()
    expected = reference_trajectory(w0, lambda w: a.T @ (a @ w - b), 0.05, 0.99,
                                    alpha_for(STEPS, 0.99), STEPS)
    got = np.asarray(out["trajectory"])
    assert np.abs(expected[-1] - w0).max() > 0.5  # it moved
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
