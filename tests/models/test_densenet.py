"""DenseNet backbones: timm-compatible layout and counts, channel order, bfloat16, BatchNorm, gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from zoo_helpers import (
    assert_finite_logits_and_every_gradient_nonzero,
    fast_jit,
    images,
    init_shapes,
    leaf_name,
    parameter_count,
    random_variables,
    traced_init,
    train_mode_gradients,
)

from jaxtl.models import Classifier, create_model
from jaxtl.models.densenet import DenseNet
from jaxtl.models.heads import make_head
from jaxtl.models.layers import max_pool2d

# timm 1.0.31 (torch 2.14.1): sum(p.numel() for p in timm.create_model(name).parameters()).
TIMM_PARAM_COUNTS = {"densenet121": 7_978_856, "densenet169": 14_149_480, "densenet201": 20_013_928}
BLOCK_CONFIGS = {"densenet121": (6, 12, 24, 16), "densenet169": (6, 12, 32, 32), "densenet201": (6, 12, 48, 32)}
NUM_FEATURES = {"densenet121": 1024, "densenet169": 1664, "densenet201": 1920}


def _init_shapes(name: str, size: int = 32):
    """The variables of `name` with timm's 1000-class head (traced once per session)."""
    return traced_init(name).variables if size == 32 else init_shapes(
        create_model(name, num_outputs=1000), size)


def _paths(tree) -> set[str]:
    return {leaf_name(p) for p, _ in jax.tree_util.tree_leaves_with_path(tree)}


@pytest.fixture(scope="module")
def variables():
    return random_variables(_init_shapes("densenet121"))


def _expected_modules(block_config) -> tuple[set[str], set[str]]:
    """timm's module paths with "." -> "_": (convs, norms)."""
    convs, norms = {"features_conv0"}, {"features_norm0", "features_norm5"}
    for i, num_layers in enumerate(block_config, start=1):
        for j in range(1, num_layers + 1):
            layer = f"features_denseblock{i}_denselayer{j}"
            convs |= {f"{layer}_conv1", f"{layer}_conv2"}
            norms |= {f"{layer}_norm1", f"{layer}_norm2"}
        if i < len(block_config):
            convs.add(f"features_transition{i}_conv")
            norms.add(f"features_transition{i}_norm")
    return convs, norms


@pytest.mark.parametrize("name", sorted(TIMM_PARAM_COUNTS))
def test_param_count_matches_timm(name):
    variables = _init_shapes(name)
    assert parameter_count(variables) == TIMM_PARAM_COUNTS[name]


@pytest.mark.parametrize("name", sorted(TIMM_PARAM_COUNTS))
def test_variable_names_follow_timm(name):
    variables = _init_shapes(name)
    backbone = variables["params"]["backbone"]
    convs, norms = _expected_modules(BLOCK_CONFIGS[name])
    assert set(backbone) == convs | norms
    assert all(set(backbone[c]) == {"kernel"} for c in convs)  # bias-free, as timm
    assert all(set(backbone[n]) == {"scale", "bias"} for n in norms)
    assert set(variables["batch_stats"]["backbone"]) == norms
    assert backbone["features_norm5"]["scale"].shape == (NUM_FEATURES[name],)
    assert variables["params"]["head"]["fc"]["kernel"].shape == (NUM_FEATURES[name], 1000)
    assert create_model(name, num_outputs=1000).backbone.num_features == NUM_FEATURES[name]


def test_densenet121_shapes():
    backbone = _init_shapes("densenet121")["params"]["backbone"]
    shapes = {name: backbone[name][leaf].shape for name, leaf in [
        ("features_conv0", "kernel"),
        ("features_norm0", "scale"),
        ("features_denseblock1_denselayer1_norm1", "scale"),
        ("features_denseblock1_denselayer1_conv1", "kernel"),
        ("features_denseblock1_denselayer1_norm2", "scale"),
        ("features_denseblock1_denselayer1_conv2", "kernel"),
        ("features_denseblock1_denselayer6_norm1", "scale"),
        ("features_transition1_norm", "scale"),
        ("features_transition1_conv", "kernel"),
        ("features_denseblock4_denselayer16_conv1", "kernel"),
        ("features_transition3_conv", "kernel"),
    ]}
    assert shapes == {
        "features_conv0": (7, 7, 3, 64),  # HWIO
        "features_norm0": (64,),
        "features_denseblock1_denselayer1_norm1": (64,),
        "features_denseblock1_denselayer1_conv1": (1, 1, 64, 128),  # bn_size 4 * growth 32
        "features_denseblock1_denselayer1_norm2": (128,),
        "features_denseblock1_denselayer1_conv2": (3, 3, 128, 32),
        "features_denseblock1_denselayer6_norm1": (64 + 5 * 32,),
        "features_transition1_norm": (256,),
        "features_transition1_conv": (1, 1, 256, 128),
        "features_denseblock4_denselayer16_conv1": (1, 1, 512 + 15 * 32, 128),
        "features_transition3_conv": (1, 1, 1024, 512),
    }


def test_feature_map_sizes_match_torch():
    model = create_model("densenet121", num_outputs=1000)
    taps = {"features_conv0", "features_transition1_conv", "features_transition2_conv",
            "features_transition3_conv", "features_norm5"}
    x = jnp.zeros((1, 224, 224, 3))
    _, state = jax.eval_shape(
        lambda v: model.apply(v, x, train=False, capture_intermediates=lambda mdl, _: mdl.name in taps),
        _init_shapes("densenet121"),
    )
    found = {name: out["__call__"][0].shape for name, out in state["intermediates"]["backbone"].items()}
    assert found == {
        "features_conv0": (1, 112, 112, 64),
        "features_transition1_conv": (1, 56, 56, 128),  # before its 2x2 average pool
        "features_transition2_conv": (1, 28, 28, 256),
        "features_transition3_conv": (1, 14, 14, 512),
        "features_norm5": (1, 7, 7, 1024),
    }


def test_new_channels_are_appended_after_the_input():
    """timm concatenates [input, layer1, layer2, ...] on the channel axis; converted
    norm1/conv1 weights are only right with the same order."""
    model = DenseNet((2, 1), growth_rate=4, bn_size=2)
    x = images(2)
    capture = {"features_norm0", "features_denseblock1_denselayer1_conv2", "features_denseblock1_denselayer2_conv2",
               "features_transition1_norm"}

    @fast_jit
    def run(x):
        variables = model.init(jax.random.key(0), x, train=False)
        _, state = model.apply(variables, x, train=False, capture_intermediates=lambda mdl, _: mdl.name in capture)
        return {name: out["__call__"][0] for name, out in state["intermediates"].items()}

    out = run(x)
    # Eval BN at init (mean 0, var 1, scale 1, bias 0) only divides by sqrt(1 + eps).
    seen = np.asarray(out["features_transition1_norm"]) * np.sqrt(1 + 1e-5)
    assert seen.shape[-1] == 8 + 2 * 4
    np.testing.assert_allclose(seen[..., 8:12], out["features_denseblock1_denselayer1_conv2"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(seen[..., 12:], out["features_denseblock1_denselayer2_conv2"], rtol=1e-5, atol=1e-5)
    stem = max_pool2d(jax.nn.relu(out["features_norm0"]), 3, 2, 1)  # the block input comes first
    np.testing.assert_allclose(seen[..., :8], stem, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", [16, 31])
def test_too_small_input_is_a_clear_error(size):
    with pytest.raises(ValueError, match="at least 32x32"):
        _init_shapes("densenet121", size=size)


def test_forward_and_features(variables):
    model = create_model("densenet121", num_outputs=1000)
    logits = fast_jit(lambda v, x: model.apply(v, x, train=False)[0])(variables, images())
    assert logits.shape == (2, 1000) and logits.dtype == jnp.float32
    assert np.isfinite(np.asarray(logits)).all() and np.ptp(np.asarray(logits)) > 0
    features = jax.eval_shape(lambda v, x: model.apply(v, x, train=False)[1]["pre_logits"], variables, images())
    assert features.shape == (2, 1024) and features.dtype == jnp.float32


def _tiny(dtype: str = "float32") -> Classifier:
    """Same DenseNet code, 4 blocks of 1-3 layers: compiling densenet121's backward pass takes
    30-50 s on a 2-core CPU (each block input's gradient sums over all later layers), so
    test_zoo.py's forward and backward pass leaves the family to this model."""
    backbone = DenseNet((2, 3, 1, 2), growth_rate=8, bn_size=2, dtype=jnp.dtype(dtype))
    return Classifier(backbone, make_head("linear", num_outputs=5))


@pytest.fixture(scope="module")
def tiny_variables():
    return random_variables(jax.eval_shape(lambda: _tiny().init(jax.random.key(0), images(1), train=False)))


def test_bfloat16_runs_close_to_float32(tiny_variables):
    x = images()
    f32 = fast_jit(lambda v, x: _tiny().apply(v, x, train=False)[0])(tiny_variables, x)
    bf16 = fast_jit(lambda v, x: _tiny("bfloat16").apply(v, x, train=False)[0])(tiny_variables, x)
    assert bf16.dtype == jnp.float32 and np.isfinite(np.asarray(bf16)).all()
    np.testing.assert_allclose(bf16, f32, rtol=0.1, atol=0.1 * float(np.abs(f32).max()))


def test_train_step_gradients_and_batch_stats(tiny_variables):
    """One compiled train-mode forward + backward: finite, nonzero gradients for every
    parameter, updated running statistics, and eval mode that uses them."""
    model, variables = _tiny(), tiny_variables
    grads, (logits, state) = train_mode_gradients(model, variables, images(seed=5) * 3.0 + 1.0,
                                                  jnp.array([1, 3]))
    assert_finite_logits_and_every_gradient_nonzero(grads, logits, (2, 5))
    assert _paths(grads) == _paths(variables["params"])

    old, new = variables["batch_stats"]["backbone"], state["batch_stats"]["backbone"]
    assert set(new) == set(old) == _expected_modules((2, 3, 1, 2))[1]
    for layer in old:
        for stat in ("mean", "var"):
            assert not np.allclose(old[layer][stat], new[layer][stat]), (layer, stat)

    trained = {"params": variables["params"], "batch_stats": state["batch_stats"]}
    apply_eval = fast_jit(lambda v, x: model.apply(v, x, train=False)[0])
    a, b, c = images(1, seed=2), images(1, seed=3), images(1, seed=4)
    ab, ac = jnp.concatenate([a, b]), jnp.concatenate([a, c])
    np.testing.assert_allclose(apply_eval(trained, ab)[0], apply_eval(trained, ac)[0], rtol=1e-5, atol=1e-6)


def test_init_matches_timm():
    """kaiming_normal_ (fan_in, gain sqrt(2)) conv kernels, BN scale 1 / bias 0, as timm's DenseNet."""
    model = DenseNet((2, 2), growth_rate=8, bn_size=4)
    variables = fast_jit(lambda key, x: model.init(key, x, train=False))(jax.random.key(0), images(1))
    params = variables["params"]
    kernel = np.asarray(params["features_denseblock2_denselayer2_conv1"]["kernel"])
    assert kernel.shape == (1, 1, 16 + 8, 32)
    np.testing.assert_allclose(kernel.std(), np.sqrt(2.0 / 24), rtol=0.15)
    conv0 = np.asarray(params["features_conv0"]["kernel"])
    np.testing.assert_allclose(conv0.std(), np.sqrt(2.0 / (49 * 3)), rtol=0.1)
    np.testing.assert_array_equal(params["features_norm5"]["scale"], 1.0)
    np.testing.assert_array_equal(params["features_norm5"]["bias"], 0.0)
    np.testing.assert_array_equal(variables["batch_stats"]["features_transition1_norm"]["var"], 1.0)
