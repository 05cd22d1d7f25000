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
from zoo_costs import cheapest_member, cost, too_costly_to_compile, traced_cost
from zoo_helpers import (
    assert_finite_logits_and_every_gradient_nonzero,
    images,
    init_shapes,
    logits_and_state,
    op_dtypes,
    random_variables,
    shapes_by_name,
    traced_init,
    train_mode_gradients,
    zoo_size,
)

from jaxtl.models import (
    LOGITS,
    PRE_LOGITS,
    create_backbone,
    create_model,
    families,
    feature_maps,
    feature_names,
    gradcam_stage,
    list_models,
    stages_of,
)

FLOAT32 = jnp.dtype(jnp.float32)


@pytest.mark.parametrize("arch", list_models())
def test_cost_table_row_is_the_traced_models(arch):
    assert cost(arch) == traced_cost(arch), "python tests/models/zoo_costs.py writes the table anew"


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


@pytest.mark.parametrize("arch", list_models())
def test_every_named_feature_with_the_shape_its_stage_implies(arch):
    """The model returns every feature name its stages declare (jaxtl/models/taps.py), and the
    logits: the stem and the stages up to the Grad-CAM stage as feature maps (N, h, w, C) in
    the compute dtype whose grid shrinks (or stays) from the input up, the pooled features as
    a vector (N, C) float32: the mean of the last stage's map where that stage is the last."""
    traced, size = traced_init(arch), zoo_size(arch)
    features = traced.features
    stages = [stage.name for stage in stages_of(arch)]
    assert set(stages) <= set(feature_names(arch)) and PRE_LOGITS in feature_names(arch)
    assert set(features) == {*feature_names(arch), LOGITS}
    assert features[LOGITS].shape == traced.logits.shape
    grids = []
    for name in feature_maps(arch):
        assert features[name].ndim == 4 and features[name].shape[0] == 2, name
        assert features[name].dtype == FLOAT32, name
        grids.append(features[name].shape[1:3])
    assert all(a[0] >= b[0] and a[1] >= b[1] for a, b in zip(grids, grids[1:])), grids
    assert grids[0][0] <= size and grids[-1][0] >= 1
    num_features = create_backbone(arch).num_features
    assert features[PRE_LOGITS].shape == (2, num_features)
    assert features[PRE_LOGITS].dtype == FLOAT32
    if gradcam_stage(arch).name == stages[-1]:
        assert features[stages[-1]].shape[-1] == num_features
    else:  # VGG: the stages after the Grad-CAM stage are no maps
        assert all(features[name].ndim == 2 for name in stages[stages.index(
            gradcam_stage(arch).name) + 1:])


def test_pooled_features_are_the_last_map_averaged_and_feed_the_head():
    """Computed on resnet18, whose last stage (layer4's last block) is the map it pools."""
    arch = "resnet18"
    model = create_model(arch, num_outputs=4)
    variables = random_variables(init_shapes(model, 32), seed=3)
    logits, out = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, images())
    last = stages_of(arch)[-1].name
    pooled = np.asarray(out[last], np.float64)
    np.testing.assert_allclose(out[PRE_LOGITS], pooled.mean((1, 2)), rtol=1e-5, atol=1e-6)
    head = variables["params"]["head"]["fc"]
    np.testing.assert_allclose(logits, np.asarray(out[PRE_LOGITS], np.float64) @ head["kernel"]
                               + head["bias"], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out[LOGITS], logits)


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
