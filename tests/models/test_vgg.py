"""VGG16 backbones: timm-compatible layout and counts, small-input pre_logits, bfloat16, BatchNorm."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from zoo_helpers import (
    fast_jit,
    images,
    init_shapes,
    leaf_name,
    logits_and_state,
    parameter_count,
    random_variables,
    traced_init,
)

from jaxtl.models import create_model
from jaxtl.models.vgg import VGG, adaptive_avg_pool2d, pre_logits

# timm 1.0.31 (torch 2.14.1): sum(p.numel() for p in timm.create_model(name).parameters()).
TIMM_PARAM_COUNTS = {"vgg16": 138_357_544, "vgg16_bn": 138_365_992}
# Indices of the Conv2d layers in timm's `features` Sequential (its BatchNorm2d follow at +1).
TIMM_CONV_INDICES = {
    "vgg16": (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
    "vgg16_bn": (0, 3, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37, 40),
}
# Input windows [start, end) of torch.nn.functional.adaptive_avg_pool2d (torch 2.14.1), per axis.
TORCH_ADAPTIVE_WINDOWS = {
    (1, 7): [(0, 1)] * 7,
    (2, 7): [(0, 1)] * 3 + [(0, 2)] + [(1, 2)] * 3,
    (3, 7): [(0, 1), (0, 1), (0, 2), (1, 2), (1, 3), (2, 3), (2, 3)],
    (5, 7): [(0, 1), (0, 2), (1, 3), (2, 3), (2, 4), (3, 5), (4, 5)],
    (10, 4): [(0, 3), (2, 5), (5, 8), (7, 10)],
    (7, 7): [(i, i + 1) for i in range(7)],
}


def _paths(tree) -> set[str]:
    return {leaf_name(p) for p, _ in jax.tree_util.tree_leaves_with_path(tree)}


@pytest.fixture(scope="module")
def variables():
    """Random variables for vgg16_bn and the same arrays renamed for vgg16 (138M values, made once)."""
    bn = random_variables(init_shapes(create_model("vgg16_bn", num_outputs=5)))
    plain_backbone = {k: v for k, v in bn["params"]["backbone"].items() if k.startswith("pre_logits")}
    for i, j in zip(TIMM_CONV_INDICES["vgg16"], TIMM_CONV_INDICES["vgg16_bn"]):
        plain_backbone[f"features_{i}"] = bn["params"]["backbone"][f"features_{j}"]
    plain = {"params": {"backbone": plain_backbone, "head": bn["params"]["head"]}}
    return {"vgg16": plain, "vgg16_bn": bn}


@functools.cache
def _apply_eval(name: str, dtype: str = "float32"):
    """One jitted eval forward per model, shared by the tests (compiling VGG16 costs seconds)."""
    model = create_model(name, num_outputs=5, dtype=dtype)
    return fast_jit(lambda v, x: model.apply(v, x, train=False)[0])


@pytest.mark.parametrize("name", sorted(TIMM_PARAM_COUNTS))
def test_param_count_matches_timm(name):
    variables = traced_init(name).variables
    assert parameter_count(variables) == TIMM_PARAM_COUNTS[name]


@pytest.mark.parametrize("name", sorted(TIMM_PARAM_COUNTS))
def test_variable_names_follow_timm(name):
    variables = init_shapes(create_model(name, num_outputs=4))
    backbone = variables["params"]["backbone"]
    convs = {f"features_{i}" for i in TIMM_CONV_INDICES[name]}
    norms = {f"features_{i + 1}" for i in TIMM_CONV_INDICES[name]} if name.endswith("_bn") else set()
    assert set(backbone) == convs | norms | {"pre_logits_fc1", "pre_logits_fc2"}
    for conv in convs:
        assert set(backbone[conv]) == {"kernel", "bias"}  # timm's VGG convs have biases, BN or not
    for norm in norms:
        assert set(backbone[norm]) == {"scale", "bias"}
    assert backbone["features_0"]["kernel"].shape == (3, 3, 3, 64)  # HWIO
    last = f"features_{TIMM_CONV_INDICES[name][-1]}"
    assert backbone[last]["kernel"].shape == (3, 3, 512, 512)
    # fc6/fc7 as convs: torch (4096, 512, 7, 7) / (4096, 4096, 1, 1) transposed to HWIO.
    assert backbone["pre_logits_fc1"]["kernel"].shape == (7, 7, 512, 4096)
    assert backbone["pre_logits_fc2"]["kernel"].shape == (1, 1, 4096, 4096)
    assert backbone["pre_logits_fc2"]["bias"].shape == (4096,)
    assert variables["params"]["head"]["fc"]["kernel"].shape == (4096, 4)
    if norms:
        assert set(variables["batch_stats"]["backbone"]) == norms
        assert "backbone/features_41/var" in _paths(variables["batch_stats"])
    else:
        assert set(variables) == {"params"}
    assert create_model(name, num_outputs=4).backbone.num_features == 4096


@pytest.mark.parametrize("sizes", sorted(TORCH_ADAPTIVE_WINDOWS))
def test_adaptive_avg_pool_matches_torch(sizes):
    in_size, out_size = sizes
    x = np.random.default_rng(0).normal(size=(2, in_size, 3, 4)).astype(np.float32)
    expected = np.stack([x[:, a:b].mean(axis=1) for a, b in TORCH_ADAPTIVE_WINDOWS[sizes]], axis=1)
    np.testing.assert_allclose(adaptive_avg_pool2d(jnp.asarray(x), (out_size, 3)), expected, rtol=1e-6, atol=1e-6)
    xt = x.transpose(0, 2, 1, 3)  # the same along the width axis
    got = adaptive_avg_pool2d(jnp.asarray(xt), (3, out_size))
    np.testing.assert_allclose(got, expected.transpose(0, 2, 1, 3), rtol=1e-6, atol=1e-6)


class _PreLogits(nn.Module):
    hidden: int = 6
    drop_rate: float = 0.0

    @nn.compact
    def __call__(self, x, train: bool):
        return pre_logits(x, train, hidden=self.hidden, drop_rate=self.drop_rate, dtype=jnp.float32)


@pytest.mark.parametrize("size", [(1, 1), (2, 9), (7, 7), (8, 10)])
def test_pre_logits_resizes_small_maps_like_timm(size):
    """Maps under 7x7 are adaptively average-pooled to (max(7, H), max(7, W)) before fc6."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, *size, 5)).astype(np.float32)
    module = _PreLogits()
    variables = jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.asarray(x), train=False))
    variables = jax.tree.map(lambda v: rng.normal(size=v.shape).astype(np.float32), variables)
    got = np.asarray(fast_jit(lambda v, x: module.apply(v, x, train=False))(variables, x))

    resized = x
    for axis, n in ((1, size[0]), (2, size[1])):
        if n < 7:
            windows = TORCH_ADAPTIVE_WINDOWS[(n, 7)]
            resized = np.stack([resized.take(range(a, b), axis=axis).mean(axis=axis) for a, b in windows], axis=axis)
    p = variables["params"]
    k1, b1 = np.asarray(p["pre_logits_fc1"]["kernel"]), np.asarray(p["pre_logits_fc1"]["bias"])
    k2, b2 = np.asarray(p["pre_logits_fc2"]["kernel"]), np.asarray(p["pre_logits_fc2"]["bias"])
    out_h, out_w = resized.shape[1] - 6, resized.shape[2] - 6
    fc6 = np.zeros((2, out_h, out_w, 6), np.float32)
    for i in range(out_h):
        for j in range(out_w):
            fc6[:, i, j] = np.einsum("nhwc,hwco->no", resized[:, i : i + 7, j : j + 7], k1) + b1
    expected = np.maximum(np.maximum(fc6, 0) @ k2[0, 0] + b2, 0)
    assert got.shape == expected.shape == (2, max(1, size[0] - 6), max(1, size[1] - 6), 6)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    if size == (1, 1):  # a 1x1 map is repeated: fc6 sees the vector in all 49 positions
        repeated = np.maximum(x[:, 0, 0] @ k1.sum(axis=(0, 1)) + b1, 0) @ k2[0, 0] + b2
        np.testing.assert_allclose(got[:, 0, 0], np.maximum(repeated, 0), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "size, fc6_size", [(32, (1, 1)), (64, (1, 1)), (224, (1, 1)), (256, (2, 2)), ((64, 256), (1, 2))]
)
def test_any_resolution_from_32(size, fc6_size):
    model = create_model("vgg16", num_outputs=3)
    h, w = (size, size) if isinstance(size, int) else size
    x = jnp.zeros((2, h, w, 3))

    def run(v):
        return model.apply(v, x, train=False, capture_intermediates=lambda mdl, _: mdl.name == "pre_logits_fc1")

    (logits, _), state = jax.eval_shape(run, init_shapes(model, size))
    assert logits.shape == (2, 3) and logits.dtype == jnp.float32
    assert state["intermediates"]["backbone"]["pre_logits_fc1"]["__call__"][0].shape == (2, *fc6_size, 4096)


@pytest.mark.parametrize("size", [16, 31, (32, 20)])
def test_too_small_input_is_a_clear_error(size):
    model = create_model("vgg16_bn", num_outputs=3)
    with pytest.raises(ValueError, match="at least 32x32"):
        init_shapes(model, size)


def test_forward_and_features(variables):
    logits = _apply_eval("vgg16_bn")(variables["vgg16_bn"], images())
    assert logits.shape == (2, 5) and logits.dtype == jnp.float32
    assert np.isfinite(np.asarray(logits)).all() and np.ptp(np.asarray(logits)) > 0
    model = create_model("vgg16_bn", num_outputs=5)
    features = jax.eval_shape(
        lambda v, x: model.apply(v, x, train=False)[1]["pre_logits"], variables["vgg16_bn"], images()
    )
    assert features.shape == (2, 4096) and features.dtype == jnp.float32


def test_bfloat16_runs_close_to_float32(variables):
    x = images()
    f32 = _apply_eval("vgg16_bn")(variables["vgg16_bn"], x)
    bf16 = _apply_eval("vgg16_bn", "bfloat16")(variables["vgg16_bn"], x)
    assert bf16.dtype == jnp.float32 and np.isfinite(np.asarray(bf16)).all()
    np.testing.assert_allclose(bf16, f32, rtol=0.1, atol=0.1 * float(np.abs(f32).max()))


def test_train_updates_batch_stats_and_eval_uses_running_stats(variables):
    model = create_model("vgg16_bn", num_outputs=5)
    apply_train = fast_jit(lambda v, x: logits_and_state(model.apply(v, x, train=True, mutable=["batch_stats"])))
    apply_eval = _apply_eval("vgg16_bn")
    v = variables["vgg16_bn"]
    logits, state = apply_train(v, images(seed=1) * 3.0 + 1.0)
    assert logits.shape == (2, 5)
    old, new = v["batch_stats"]["backbone"], state["batch_stats"]["backbone"]
    assert set(new) == set(old)
    for layer in ("features_1", "features_41"):
        for stat in ("mean", "var"):
            assert not np.allclose(old[layer][stat], new[layer][stat]), (layer, stat)

    trained = {"params": v["params"], "batch_stats": state["batch_stats"]}
    a, b, c = images(1, seed=2), images(1, seed=3), images(1, seed=4)
    ab, ac = jnp.concatenate([a, b]), jnp.concatenate([a, c])
    np.testing.assert_allclose(apply_eval(trained, ab)[0], apply_eval(trained, ac)[0], rtol=1e-5, atol=1e-6)


def test_vgg16_without_bn_has_no_batch_stats(variables):
    model = create_model("vgg16", num_outputs=5)
    _, state = jax.eval_shape(
        lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]), variables["vgg16"], images()
    )
    assert not jax.tree.leaves(state)


def test_pre_logits_dropout_only_in_training():
    assert VGG().drop_rate == 0.0  # timm's default
    module = _PreLogits(hidden=64, drop_rate=0.5)

    @fast_jit
    def run(x):
        variables = module.init(jax.random.key(0), x, train=False)
        train = [module.apply(variables, x, train=True, rngs={"dropout": jax.random.key(i)}) for i in (1, 2)]
        return train, [module.apply(variables, x, train=False) for _ in range(2)]

    (a, b), (c, d) = run(images(2, size=1, channels=4))
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(c, d)


def test_init_matches_timm():
    """kaiming_normal_(fan_out, relu) conv kernels and zero biases, as timm's VGG._initialize_weights."""
    model = VGG((16, "M", 16, "M", 16, "M", 16, "M", 16, "M"), use_bn=True, hidden=64)
    variables = fast_jit(lambda key, x: model.init(key, x, train=False))(jax.random.key(0), images(1))
    params = variables["params"]
    kernel = np.asarray(params["pre_logits_fc1"]["kernel"])
    np.testing.assert_allclose(kernel.std(), np.sqrt(2.0 / (49 * 64)), rtol=0.1)
    for name in ("features_0", "features_4", "pre_logits_fc1", "pre_logits_fc2"):
        np.testing.assert_array_equal(params[name]["bias"], 0.0)
    np.testing.assert_array_equal(params["features_1"]["scale"], 1.0)
    np.testing.assert_array_equal(variables["batch_stats"]["features_1"]["var"], 1.0)
