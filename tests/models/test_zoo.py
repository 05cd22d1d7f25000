"""What every architecture of the zoo must do, whatever its family.

Abstract checks (traced, never compiled) run for every registered architecture, reading one
traced `init` per architecture (zoo_helpers.traced_init, cached per test process); the bfloat16
and input-channel checks, which trace it twice more, run for the members of each family that
bring a kind of layer (DTYPE_CHECKED). The forward and backward pass is compiled and run for the
cheapest member of each family (zoo_costs.py), the deep ones with one block per stage (SHRUNK):
the other members run the same code with more blocks or wider layers. Inputs: two images at the
architecture's smallest size, at least 32 px (`zoo_size`).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util
from zoo_costs import (
    cheapest_member,
    cost,
    dtype_checked,
    members_by_cost,
    too_costly_to_compile,
    traced_cost,
    traced_dtype_checked,
    variable_kinds,
)
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
from jaxtl.models.vgg import VGG16_CFG
from jaxtl.optim.stages import stage_of

FLOAT32 = jnp.dtype(jnp.float32)

# The members whose bfloat16 and grey-image `init`s and bfloat16 training-mode forward are traced
# (two more traces each, ~1.7 s per architecture on CI): those zoo_costs.json marks, in each
# family every member with a kind of variable no cheaper member has (zoo_costs.py); the others
# repeat these members' layers with other depths and widths.
DTYPE_CHECKED = [arch for arch in list_models() if dtype_checked(arch)]


@pytest.mark.parametrize("arch", list_models())
def test_cost_table_row_is_the_traced_models(arch):
    assert cost(arch) == traced_cost(arch), "python tests/models/zoo_costs.py writes the table anew"


@pytest.mark.parametrize("arch", list_models())
def test_float32_compute(arch):
    traced = traced_init(arch)
    assert {x.dtype for x in jax.tree.leaves(traced.variables)} == {FLOAT32}
    assert op_dtypes(traced.jaxpr) == {FLOAT32}
    assert traced.logits.shape == (2, 1000) and traced.logits.dtype == FLOAT32


@pytest.mark.parametrize("family", sorted(families()))
def test_dtype_checked_members_are_those_bringing_a_kind_of_variable(family):
    checked = [arch for arch in members_by_cost(family) if arch in DTYPE_CHECKED]
    assert checked == traced_dtype_checked(family), "python tests/models/zoo_costs.py"
    covered = set().union(*map(variable_kinds, checked))
    for arch in families()[family]:
        assert variable_kinds(arch) <= covered, (arch, variable_kinds(arch) - covered)


@pytest.mark.parametrize("arch", DTYPE_CHECKED)
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


@pytest.mark.parametrize("arch", DTYPE_CHECKED)
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
    assert all(a[0] >= b[0] and a[1] >= b[1] for a, b in itertools.pairwise(grids)), grids
    assert grids[0][0] <= size and grids[-1][0] >= 1
    num_features = create_backbone(arch).num_features
    assert features[PRE_LOGITS].shape == (2, num_features)
    assert features[PRE_LOGITS].dtype == FLOAT32
    if gradcam_stage(arch).name == stages[-1]:
        assert features[stages[-1]].shape[-1] == num_features
    else:  # VGG: the stages after the Grad-CAM stage are no maps
        assert all(features[name].ndim == 2 for name in stages[stages.index(
            gradcam_stage(arch).name) + 1:])


@pytest.mark.parametrize("arch", list_models())
def test_stages_cover_every_backbone_variable_once_in_forward_order(arch):
    """Every registered backbone is cut into stages (`stages_of`) that cover it exactly, in
    forward order (here rather than in tests/optim/test_stages.py: it reads the traced `init`)."""
    stages = stages_of(arch)
    traced = traced_init(arch)
    for collection in traced.variables.values():
        for path in traverse_util.flatten_dict(collection.get("backbone", {})):
            stage_of(stages, "/".join(path))  # raises unless exactly one stage matches
    # every module the backbone calls (Dropout and pooling layers without variables too)
    # belongs to a stage, and the stages are first entered in the order they are listed
    first_call: dict[str, int] = {}
    for index, path in enumerate(traced.backbone_calls):
        first_call.setdefault(stage_of(stages, "/".join(path)), index)
    assert list(first_call) == [stage.name for stage in stages]


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
# Of these, the registered backbones compiled here with one block per stage (nf_resnet50,
# resnetv2_50x1_bit, tf_efficientnet_b0: every kind of block they have, at a fraction of the
# 10-15 s each took to compile on CI in full) or an eighth of the width (vgg16: 138 M
# parameters to draw and differentiate, 2 M so); the rest of their configuration as registered.
SHRUNK = {"nf_resnet50": {"depths": (1, 1, 1, 1)}, "resnetv2_50x1_bit": {"layers": (1, 1, 1, 1)},
          "tf_efficientnet_b0": {"depth": 0.1},
          "vgg16": {"cfg": tuple(c // 8 if isinstance(c, int) else c for c in VGG16_CFG),
                    "hidden": 512}}
assert set(SHRUNK) <= set(COMPILED_HERE), set(SHRUNK) - set(COMPILED_HERE)


@pytest.mark.parametrize("arch", COMPILED_HERE)
def test_forward_backward(arch):
    """One training-mode forward and backward pass on 12-channel images (as BigEarthNet's):
    finite logits, a finite and non-zero gradient for every parameter, and the statistics of
    every BatchNorm layer updated."""
    model = create_model(arch, num_outputs=5)
    model = model.clone(backbone=model.backbone.clone(**SHRUNK.get(arch, {})))
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
