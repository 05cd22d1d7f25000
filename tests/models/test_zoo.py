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
                         op_dtypes, random_variables, shapes_by_name, train_mode_gradients,
                         traced_init, zoo_size)

FLOAT32 = jnp.dtype(jnp.float32)


@pytest.mark.parametrize("arch", list_models())
def test_float32_compute(arch):
    traced = traced_init(arch)
    assert {x.dtype for x in jax.tree.leaves(traced.variables)} == {FLOAT32}
    assert op_dtypes(traced.jaxpr) == {FLOAT32}
    assert traced.logits.shape == (2, 5) and traced.logits.dtype == FLOAT32


@pytest.mark.parametrize("arch", list_models())
def test_bfloat16_compute(arch):
    """Convolutions and matmuls run in bfloat16; variables, updated batch statistics and
    logits stay float32."""
    model = create_model(arch, num_outputs=5, head="mlp_128", dtype="bfloat16")
    shapes = init_shapes(model, zoo_size(arch))
    assert {x.dtype for x in jax.tree.leaves(shapes)} == {FLOAT32}

    def forward(v, x):
        return model.apply(v, x, train=True, mutable=["batch_stats"])

    jaxpr, (logits, state) = jax.make_jaxpr(forward, return_shape=True)(
        shapes, images(size=zoo_size(arch)))
    assert op_dtypes(jaxpr.jaxpr) == {jnp.dtype(jnp.bfloat16)}
    assert logits.shape == (2, 5) and logits.dtype == FLOAT32
    assert {x.dtype for x in jax.tree.leaves(state)} == ({FLOAT32} if "batch_stats" in shapes
                                                          else set())


@pytest.mark.parametrize("arch", list_models())
@pytest.mark.parametrize("channels", [1, 12])
def test_any_number_of_input_channels(arch, channels):
    """Only the first convolution's kernel depends on the number of input channels."""
    model = create_model(arch, num_outputs=5)
    logits, variables = jax.eval_shape(
        lambda x: model.init_with_output(jax.random.key(0), x, train=False),
        images(size=zoo_size(arch), channels=channels))
    assert logits.shape == (2, 5) and logits.dtype == FLOAT32
    rgb, found = shapes_by_name(traced_init(arch).variables), shapes_by_name(variables)
    assert set(found) == set(rgb)
    changed = [name for name in rgb if rgb[name] != found[name]]
    assert len(changed) == 1 and changed[0].endswith("/kernel"), changed
    kernel = rgb[changed[0]]
    assert kernel[-2] == 3 and found[changed[0]] == (*kernel[:-2], channels, kernel[-1])


@pytest.mark.parametrize("family", families())
def test_forward_backward(family):
    """One training-mode forward and backward pass: finite logits, a finite and non-zero
    gradient for every parameter, and the statistics of every BatchNorm layer updated."""
    arch = cheapest_member(family)
    reason = too_costly_to_compile(arch)
    if reason:
        pytest.skip(reason)
    model = create_model(arch, num_outputs=5)
    variables = random_variables(init_shapes(model, zoo_size(arch)))
    grads, (logits, state) = train_mode_gradients(
        model, variables, images(size=zoo_size(arch), seed=5), jnp.array([1, 3]))
    assert_finite_logits_and_every_gradient_nonzero(grads, logits, (2, 5))
    old = traverse_util.flatten_dict(variables.get("batch_stats", {}), sep="/")
    new = traverse_util.flatten_dict(state.get("batch_stats", {}), sep="/")
    assert set(old) == set(new)
    layers = {name.rsplit("/", 1)[0] for name in old}  # a layer's running mean and variance
    unchanged = {layer for layer in layers if all(np.allclose(old[name], new[name]) for name in old
                                                  if name.startswith(layer + "/"))}
    assert not unchanged
