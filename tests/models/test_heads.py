"""Classifier heads: layout, dropout semantics, dtypes, errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from zoo_helpers import fast_jit

from jaxtl.models import HEADS
from jaxtl.models.heads import make_head

FEATURES = jnp.asarray(np.random.default_rng(0).normal(size=(4, 32)), jnp.float32)


def _init(head):
    return fast_jit(lambda key, x: head.init(key, x, train=False))(jax.random.key(0), FEATURES)


def _applier(head):
    """apply(variables, train, seed) -> outputs; one compilation per value of `train`."""
    apply = fast_jit(
        lambda v, x, key, train: head.apply(v, x, train=train, rngs={"dropout": key}), static_argnames="train"
    )
    return lambda variables, train, seed=0: apply(variables, FEATURES, jax.random.key(seed), train=train)


def test_head_names():
    assert HEADS == ("linear", "mlp_128", "mlp_512_256_128_64")


@pytest.mark.parametrize(
    "name, widths",
    [("linear", ()), ("mlp_128", (128,)), ("mlp_512_256_128_64", (512, 256, 128, 64))],
)
def test_layout(name, widths):
    params = jax.eval_shape(lambda: make_head(name, num_outputs=3).init(jax.random.key(0), FEATURES, train=False))
    params = params["params"]
    assert set(params) == {f"hidden_{i}" for i in range(len(widths))} | {"fc"}
    fan_in = 32
    for i, width in enumerate(widths):
        assert params[f"hidden_{i}"]["kernel"].shape == (fan_in, width)
        assert params[f"hidden_{i}"]["bias"].shape == (width,)
        fan_in = width
    assert params["fc"]["kernel"].shape == (fan_in, 3)
    assert params["fc"]["bias"].shape == (3,)


@pytest.mark.parametrize("name", HEADS)
def test_zero_dropout_is_a_no_op(name):
    head = make_head(name, num_outputs=3, dropout=0.0)
    variables = _init(head)
    eval_out = fast_jit(lambda v, x: head.apply(v, x, train=False))(variables, FEATURES)
    # No dropout rng needed: rate 0 never draws random numbers.
    train_out = fast_jit(lambda v, x: head.apply(v, x, train=True))(variables, FEATURES)
    np.testing.assert_array_equal(train_out, eval_out)
    assert eval_out.shape == (4, 3) and eval_out.dtype == jnp.float32


@pytest.mark.parametrize("name", HEADS)
def test_dropout_only_in_training(name):
    head = make_head(name, num_outputs=3, dropout=0.5)
    variables, apply = _init(head), _applier(head)
    eval_a, eval_b = apply(variables, False, seed=1), apply(variables, False, seed=2)
    np.testing.assert_array_equal(eval_a, eval_b)
    train_a, train_b = apply(variables, True, seed=1), apply(variables, True, seed=2)
    assert not np.allclose(train_a, train_b)
    assert not np.allclose(train_a, eval_a)


def test_linear_head_drops_pooled_features():
    head = make_head("linear", num_outputs=3, dropout=0.5)
    variables = _init(head)
    out = _applier(head)(variables, True, seed=3)
    # `linear` has no hidden layer, so any change must come from dropping pooled features.
    fc = variables["params"]["fc"]
    assert not np.allclose(out, FEATURES @ fc["kernel"] + fc["bias"])
    assert np.isfinite(np.asarray(out)).all()


def test_bfloat16_model_computes_its_head_and_logits_in_float32():
    from jaxtl.models import create_model

    model = create_model("small_cnn", num_outputs=3, head="mlp_128", dtype="bfloat16")
    images = jax.random.normal(jax.random.key(1), (4, 32, 32, 3))
    variables = fast_jit(lambda x: model.init(jax.random.key(0), x, train=False))(images)
    assert {x.dtype for x in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
    logits, features = fast_jit(lambda v, x: (
        model.apply(v, x, train=False)[0], model.apply(v, x, train=False)[1]["pre_logits"]))(
        variables, images)
    features = np.asarray(features, np.float64)
    head = jax.tree.map(lambda x: np.asarray(x, np.float64), variables["params"]["head"])
    hidden = np.maximum(features @ head["hidden_0"]["kernel"] + head["hidden_0"]["bias"], 0)
    expected = hidden @ head["fc"]["kernel"] + head["fc"]["bias"]
    assert logits.dtype == jnp.float32
    # float32 agrees to ~1e-6; a bfloat16 head (8-bit mantissa) would be off by ~1e-2.
    np.testing.assert_allclose(np.asarray(logits), expected, rtol=1e-5, atol=1e-5)


def test_unknown_head():
    with pytest.raises(ValueError, match="mlp_999") as info:
        make_head("mlp_999", num_outputs=2)
    for name in HEADS:
        assert name in str(info.value)


@pytest.mark.parametrize("rate", [-0.1, 1.0])
def test_bad_dropout_rate(rate):
    with pytest.raises(ValueError, match="dropout"):
        make_head("linear", num_outputs=2, dropout=rate)
