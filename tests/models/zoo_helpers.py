"""Helpers shared by the model-zoo tests."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

# Compile time dominates these tests on a 2-core CPU: skip XLA's backend optimisation (and, for
# the deepest models, its fusion emitters too; about 3x faster to compile, same numbers).
fast_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
fast_jit_no_fusion = functools.partial(
    jax.jit, compiler_options={"xla_backend_optimization_level": 0,
                               "xla_cpu_use_fusion_emitters": False})


def leaf_name(path) -> str:
    """'backbone/conv1/kernel' for a pytree key path."""
    return jax.tree_util.keystr(path, simple=True, separator="/")


def op_dtypes(jaxpr, names=("conv_general_dilated", "dot_general")) -> set:
    """Output dtypes of the named primitives, searching nested jaxprs too."""
    found = set()
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in names:
            found.add(eqn.outvars[0].aval.dtype)
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    found |= op_dtypes(inner, names)
    return found


def images(n: int = 2, size: int | tuple[int, int] = 32, channels: int = 3,
           seed: int = 0) -> jnp.ndarray:
    """Normal NHWC float32 images; NumPy, not jax.random: compiling threefry for every new
    shape costs seconds on a CPU."""
    h, w = (size, size) if isinstance(size, int) else size
    return jnp.asarray(np.random.default_rng(seed).normal(size=(n, h, w, channels)), jnp.float32)


def init_shapes(model, size: int | tuple[int, int] = 32, channels: int = 3):
    """The model's variables as shapes and dtypes, without computing them."""
    h, w = (size, size) if isinstance(size, int) else size
    x = jnp.zeros((1, h, w, channels), jnp.float32)
    return jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))


def train_mode_gradients(model, variables, x, labels, jit=fast_jit_no_fusion):
    """One training-mode forward and backward pass with softmax cross-entropy:
    (gradients of the params, (logits, updated collections))."""
    stats = variables.get("batch_stats")

    @jit
    def step(params):
        def loss(p):
            if stats is None:  # no batch statistics (weight-standardised, normaliser-free)
                logits, state = model.apply({"params": p}, x, train=True), {}
            else:
                logits, state = model.apply({"params": p, "batch_stats": stats}, x, train=True,
                                            mutable=["batch_stats"])
            log_probs = jax.nn.log_softmax(logits)
            nll = -jnp.mean(jnp.take_along_axis(log_probs, labels[:, None], axis=1))
            return nll, (logits, state)

        return jax.grad(loss, has_aux=True)(params)

    return step(variables["params"])


def assert_finite_logits_and_every_gradient_nonzero(grads, logits, shape) -> None:
    assert logits.shape == shape and logits.dtype == jnp.float32
    assert np.isfinite(np.asarray(logits)).all()
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        g = np.asarray(g)
        assert np.isfinite(g).all() and np.any(g), leaf_name(path)
