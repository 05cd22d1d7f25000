"""Concrete model variables drawn with NumPy, for tests that need weights without running
`init` (compiling a whole network's `init`, or jax.random for every leaf's shape, costs seconds
on a CPU)."""

from __future__ import annotations

import jax
import numpy as np


def leaf_name(path) -> str:
    """'backbone/conv1/kernel' for a pytree key path."""
    return jax.tree_util.keystr(path, simple=True, separator="/")


def random_variables(shapes, seed: int = 0, noise: float = 0.0):
    """Concrete variables for `shapes` from NumPy (a real `init` of a whole network costs many
    seconds of compilation on a CPU; each family's tests check what its `init` produces):
    He-normal (fan-in) kernels, norm scales, NF gains, LayerScale gammas and BatchNorm running
    variances 1 (every residual branch live, unlike after `init`), biases and running means 0;
    with `noise`, those plus `noise` x N(0, 1) each, so that a lost or misplaced leaf of any
    kind changes the outputs."""
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = leaf_name(path)
        if name.endswith("kernel"):
            std = np.sqrt(2.0 / np.prod(leaf.shape[:-1]))
            return rng.normal(0.0, std, leaf.shape).astype(np.float32)
        base = 1.0 if name.endswith(("scale", "gain", "var", "gamma")) else 0.0
        value = np.full(leaf.shape, base, np.float32)
        if noise:
            value += np.float32(noise) * rng.standard_normal(leaf.shape, np.float32)
        return value

    return jax.device_put(jax.tree_util.tree_map_with_path(fill, shapes))
