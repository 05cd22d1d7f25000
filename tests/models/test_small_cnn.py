"""small_cnn, the from-scratch baseline: layout, sizes, bfloat16, BatchNorm, init."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from zoo_helpers import fast_jit, images, leaf_name, logits_and_state

from jaxtl.models import create_model, list_models

WIDTHS = (32, 64, 128, 256)
# 3x3 conv kernels (no bias: BN follows) + BN scale/bias per block.
BACKBONE_PARAMS = sum(9 * c_in * c_out + 2 * c_out for c_in, c_out in zip((3, *WIDTHS), WIDTHS))


@functools.cache
def _model(num_outputs: int = 5, dtype: str = "float32"):
    return create_model("small_cnn", num_outputs=num_outputs, dtype=dtype)


@functools.cache
def _apply_eval(dtype: str = "float32"):
    model = _model(dtype=dtype)
    return fast_jit(lambda v, x: model.apply(v, x, train=False)[0])


@functools.cache
def _apply_train():
    model = _model()
    return fast_jit(lambda v, x: logits_and_state(model.apply(v, x, train=True, mutable=["batch_stats"])))


@functools.cache
def _initial_variables():
    """A real `init`: cheap for this model."""
    return fast_jit(lambda key, x: _model().init(key, x, train=False))(jax.random.key(0), images(1))


@pytest.fixture(scope="module")
def variables():
    """The initial variables with BN scales and biases moved off 1 / 0."""
    variables = _initial_variables()
    rng = np.random.default_rng(0)

    def perturb(path, value):
        return value + 0.1 * rng.normal(size=value.shape).astype(np.float32) if "_bn" in leaf_name(path) else value

    return {"params": jax.tree_util.tree_map_with_path(perturb, variables["params"]),
            "batch_stats": variables["batch_stats"]}


def test_registered():
    assert "small_cnn" in list_models()


def test_param_count():
    shapes = jax.eval_shape(lambda: _model(1000).init(jax.random.key(0), images(1), train=False))
    assert BACKBONE_PARAMS == 388_896
    assert sum(x.size for x in jax.tree.leaves(shapes["params"]["backbone"])) == BACKBONE_PARAMS
    assert sum(x.size for x in jax.tree.leaves(shapes["params"])) == BACKBONE_PARAMS + 256 * 1000 + 1000


def test_variable_names(variables):
    backbone = variables["params"]["backbone"]
    assert set(backbone) == {f"block{i}_{kind}" for i in range(1, 5) for kind in ("conv", "bn")}
    for i, (c_in, c_out) in enumerate(zip((3, *WIDTHS), WIDTHS), start=1):
        assert set(backbone[f"block{i}_conv"]) == {"kernel"}
        assert backbone[f"block{i}_conv"]["kernel"].shape == (3, 3, c_in, c_out)
        assert backbone[f"block{i}_bn"]["scale"].shape == (c_out,)
    assert set(variables["batch_stats"]["backbone"]) == {f"block{i}_bn" for i in range(1, 5)}
    assert variables["params"]["head"]["fc"]["kernel"].shape == (256, 5)
    assert _model().backbone.num_features == 256


def test_init():
    """He-normal (fan_out) kernels as the ResNets, BN scale 1 / bias 0, unit running variance."""
    variables = _initial_variables()
    backbone = variables["params"]["backbone"]
    kernel = np.asarray(backbone["block4_conv"]["kernel"])
    np.testing.assert_allclose(kernel.std(), np.sqrt(2.0 / (9 * 256)), rtol=0.05)
    np.testing.assert_array_equal(backbone["block2_bn"]["scale"], 1.0)
    np.testing.assert_array_equal(backbone["block2_bn"]["bias"], 0.0)
    np.testing.assert_array_equal(variables["batch_stats"]["backbone"]["block3_bn"]["var"], 1.0)


@pytest.mark.parametrize("size", [16, 32, (16, 40), 75])
def test_any_input_size_from_16(variables, size):
    logits = _apply_eval()(variables, images(size=size))
    assert logits.shape == (2, 5) and logits.dtype == jnp.float32
    assert np.isfinite(np.asarray(logits)).all()


@pytest.mark.parametrize("size", [8, 15, (16, 12)])
def test_too_small_input_is_a_clear_error(variables, size):
    with pytest.raises(ValueError, match="at least 16x16"):
        _model().apply(variables, images(size=size), train=False)


def test_features(variables):
    features = jax.eval_shape(
        lambda v, x: _model().apply(v, x, train=False)[1]["pre_logits"], variables, images()
    )
    assert features.shape == (2, 256) and features.dtype == jnp.float32


def test_bfloat16_runs_close_to_float32(variables):
    x = images()
    f32 = _apply_eval()(variables, x)
    bf16 = _apply_eval("bfloat16")(variables, x)
    assert bf16.dtype == jnp.float32 and np.isfinite(np.asarray(bf16)).all()
    np.testing.assert_allclose(bf16, f32, rtol=0.1, atol=0.05 * float(np.abs(f32).max()))
    jaxpr = jax.make_jaxpr(lambda v, x: _model(dtype="bfloat16").apply(v, x, train=False))(variables, x)
    convs = [e for e in jaxpr.eqns if e.primitive.name == "conv_general_dilated"]
    assert len(convs) == 4 and {e.outvars[0].aval.dtype for e in convs} == {jnp.dtype(jnp.bfloat16)}


def test_train_updates_batch_stats_and_eval_uses_running_stats(variables):
    logits, state = _apply_train()(variables, images(seed=1) * 3.0 + 1.0)
    assert logits.shape == (2, 5)
    for block in variables["batch_stats"]["backbone"]:
        for stat in ("mean", "var"):
            old, new = variables["batch_stats"]["backbone"][block][stat], state["batch_stats"]["backbone"][block][stat]
            assert not np.allclose(old, new), (block, stat)

    trained = {"params": variables["params"], "batch_stats": state["batch_stats"]}
    a, b, c = images(1, seed=2), images(1, seed=3), images(1, seed=4)
    ab, ac = jnp.concatenate([a, b]), jnp.concatenate([a, c])
    np.testing.assert_allclose(_apply_eval()(trained, ab)[0], _apply_eval()(trained, ac)[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(_apply_train()(trained, ab)[0][0], _apply_train()(trained, ac)[0][0], atol=1e-5)


