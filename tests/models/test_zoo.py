"""What every architecture of the zoo must do, whatever its family.

Abstract checks (traced, never compiled) run for every registered architecture; the forward and
backward pass is compiled and run for the cheapest member of each family (zoo_costs.py): the
other members run the same code with more blocks or wider layers. Inputs: two images at the
architecture's smallest size, at least 32 px (`zoo_size`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from jaxtl.models import create_model, families, list_models
from zoo_costs import cheapest_member, too_costly_to_compile
from zoo_helpers import (assert_finite_logits_and_every_gradient_nonzero, images, init_shapes,
                         logits_and_state, op_dtypes, random_variables, shapes_by_name, train_mode_gradients,
                         traced_init, zoo_size)

FLOAT32 = jnp.dtype(jnp.float32)


@pytest.mark.parametrize("arch", list_models())
def test_float32_compute(arch):
    traced = traced_init(arch)
    assert {x.dtype for x in jax.tree.leaves(traced.variables)} == {FLOAT32}
    assert op_dtypes(traced.jaxpr) == {FLOAT32}
    assert traced.logits.shape == (2, 1000) and traced.logits.dtype == FLOAT32


@pytest.mark.parametrize("arch", list_models())
def test_bfloat16_compute(arch):
    """The backbone's convolutions run in bfloat16, in training mode too; the head's matmul,
    the variables, updated batch statistics and logits stay float32. (On grey images:
    test_any_number_of_input_channels reads the same traced `init`.)"""
    traced = traced_init(arch, "bfloat16", channels=1)
    assert {x.dtype for x in jax.tree.leaves(traced.variables)} == {FLOAT32}
    assert traced.logits.dtype == FLOAT32
    model = create_model(arch, num_outputs=1000, dtype="bfloat16")

    def train_forward(v, x):
        return logits_and_state(model.apply(v, x, train=True, mutable=["batch_stats"]))

    jaxpr, (logits, state) = jax.make_jaxpr(train_forward, return_shape=True)(
        traced.variables, images(size=zoo_size(arch), channels=1))
    assert op_dtypes(jaxpr.jaxpr, ("conv_general_dilated",)) == {jnp.dtype(jnp.bfloat16)}
    assert FLOAT32 in op_dtypes(jaxpr.jaxpr, ("dot_general",))  # the head
    assert logits.shape == (2, 1000) and logits.dtype == FLOAT32
    assert {x.dtype for x in jax.tree.leaves(state)} == (
        {FLOAT32} if "batch_stats" in traced.variables else set())


@pytest.mark.parametrize("arch", list_models())
def test_any_number_of_input_channels(arch):
    """Only the first convolution's kernel depends on the number of input channels: grey images
    here, against RGB (12 channels in test_forward_backward, compiled and run)."""
    rgb = shapes_by_name(traced_init(arch).variables)
    grey = shapes_by_name(traced_init(arch, "bfloat16", channels=1).variables)
    assert set(grey) == set(rgb)
    changed = [name for name in rgb if rgb[name] != grey[name]]
    assert len(changed) == 1 and changed[0].endswith("/kernel"), changed
    kernel = rgb[changed[0]]
    assert kernel[-2] == 3 and grey[changed[0]] == (*kernel[:-2], 1, kernel[-1])


# Each family's cheapest member whose backward pass compiles fast enough for CI (the rest, e.g.
# densenet121, run that code in a smaller model in their family's tests). Decided when the tests
# are collected, from the traced inits the dtype and channel tests above read anyway.
COMPILED_HERE = [arch for arch in map(cheapest_member, families())
                 if too_costly_to_compile(arch) is None]


@pytest.mark.parametrize("arch", COMPILED_HERE)
def test_forward_backward(arch):
    """One training-mode forward and backward pass on 12-channel images (as BigEarthNet's):
    finite logits, a finite and non-zero gradient for every parameter, and the statistics of
    every BatchNorm layer updated."""
    model = create_model(arch, num_outputs=5)
    variables = random_variables(init_shapes(model, zoo_size(arch), channels=12))
    grads, (logits, state) = train_mode_gradients(
        model, variables, images(size=zoo_size(arch), channels=12, seed=5), jnp.array([1, 3]))
    assert_finite_logits_and_every_gradient_nonzero(grads, logits, (2, 5))
    old = traverse_util.flatten_dict(variables.get("batch_stats", {}), sep="/")
    new = traverse_util.flatten_dict(state.get("batch_stats", {}), sep="/")
    assert set(old) == set(new)
    layers = {name.rsplit("/", 1)[0] for name in old}  # a layer's running mean and variance
    unchanged = {layer for layer in layers if all(np.allclose(old[name], new[name]) for name in old
                                                  if name.startswith(layer + "/"))}
    assert not unchanged
