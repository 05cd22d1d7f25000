"""Attention rollout against slow NumPy definitions: the rule on random attention (class-token
and mean-pooled models, register tokens), and timm's test_vit with random weights, whose
attention weights are recomputed here by a NumPy forward pass; non-ViTs refuse it."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import erf

from jaxtl import models
from jaxtl.explain import rollout
from jaxtl.models.taps import attention
from jaxtl.models.vit import LAYER_NORM_EPS, ViTConfig

SIZE = 160  # test_vit's img_size: position embeddings used as stored (no resampling)


def slow_rollout(attentions: list[np.ndarray], prefix: int, pool: str) -> np.ndarray:
    """One image: attentions [(heads, T, T)] first block first -> the map's T - prefix values,
    entry by entry from the definition."""
    tokens = attentions[0].shape[-1]
    flow = np.eye(tokens)
    for weights in attentions:
        mixed = np.zeros((tokens, tokens))
        for i in range(tokens):
            row = [sum(weights[h, i, j] for h in range(weights.shape[0])) / weights.shape[0]
                   + (1.0 if i == j else 0.0) for j in range(tokens)]
            mixed[i] = np.array(row) / sum(row)
        flow = np.array([[sum(mixed[i, k] * flow[k, j] for k in range(tokens))
                          for j in range(tokens)] for i in range(tokens)])
    if pool == "token":
        return flow[0, prefix:]
    return np.mean([flow[i, prefix:] for i in range(prefix, tokens)], axis=0)


def _random_attention(rng, batch: int, heads: int, tokens: int) -> np.ndarray:
    logits = rng.normal(0.0, 2.0, (batch, heads, tokens, tokens))
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    return weights / weights.sum(-1, keepdims=True)


@pytest.mark.parametrize("pool,reg_tokens", [("token", 0), ("token", 2), ("avg", 0), ("avg", 3)])
def test_rollout_rule_matches_the_definition(pool, reg_tokens):
    config = ViTConfig(4, 8, 3, 2, img_size=12, global_pool=pool, reg_tokens=reg_tokens)
    grid = (2, 3)
    tokens = config.num_prefix_tokens + grid[0] * grid[1]
    rng = np.random.default_rng(1)
    attentions = [_random_attention(rng, 2, 2, tokens) for _ in range(config.depth)]
    maps = np.asarray(rollout.attention_rollout([jnp.asarray(a) for a in attentions], config,
                                                grid))
    assert maps.shape == (2, *grid)
    for b in range(2):
        expected = slow_rollout([a[b] for a in attentions], config.num_prefix_tokens, pool)
        np.testing.assert_allclose(maps[b].ravel(), expected, rtol=1e-5, atol=1e-7)


def _layer_norm(x, p):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + LAYER_NORM_EPS) * p["scale"] + p["bias"]


def _dense(x, p):
    return x @ p["kernel"] + p["bias"]


def numpy_vit(params, images: np.ndarray, heads: int) -> tuple[list[np.ndarray], np.ndarray]:
    """timm's ViT forward pass written out in NumPy (float64), class-token pooling, inputs at
    the stored position grid: (each block's attention weights (N, heads, T, T), logits)."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    backbone = p["backbone"]
    kernel = backbone["patch_embed"]["proj"]["kernel"]  # (P, P, C, D)
    patch, dim = kernel.shape[0], kernel.shape[-1]
    n, side = images.shape[0], images.shape[1] // patch
    patches = images.reshape(n, side, patch, side, patch, -1).transpose(0, 1, 3, 2, 4, 5)
    tokens = patches.reshape(n, side * side, -1) @ kernel.reshape(-1, dim)
    tokens = tokens + backbone["patch_embed"]["proj"]["bias"]
    cls = np.broadcast_to(backbone["cls_token"], (n, 1, dim))
    x = np.concatenate([cls, tokens], axis=1) + backbone["pos_embed"]
    attentions = []
    blocks = sorted((k for k in backbone if k.startswith("blocks_")),
                    key=lambda k: int(k.split("_")[1]))
    for name in blocks:
        block = backbone[name]
        y = _layer_norm(x, block["norm1"])
        qkv = _dense(y, block["attn"]["qkv"]).reshape(n, x.shape[1], 3, heads, dim // heads)
        q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))  # (N, heads, T, c)
        logits = q @ k.transpose(0, 1, 3, 2) / np.sqrt(dim // heads)
        weights = np.exp(logits - logits.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        attentions.append(weights)
        out = (weights @ v).transpose(0, 2, 1, 3).reshape(n, x.shape[1], dim)
        x = x + _dense(out, block["attn"]["proj"])
        y = _dense(_layer_norm(x, block["norm2"]), block["mlp"]["fc1"])
        y = 0.5 * y * (1.0 + erf(y / np.sqrt(2.0)))
        x = x + _dense(y, block["mlp"]["fc2"])
    pooled = _layer_norm(x, backbone["norm"])[:, 0]
    return attentions, _dense(pooled, p["head"]["fc"])


@functools.cache
def _test_vit():
    """test_vit for 3 outputs with random weights (NumPy: class token and position embeddings
    too, so every row of attention is informative) and two random 160 px images."""
    model = models.create_model("test_vit", num_outputs=3)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0),
                                               jnp.zeros((1, SIZE, SIZE, 3)), train=False))
    rng = np.random.default_rng(0)

    def fill(path, leaf):
        name = jax.tree_util.keystr(path)
        if "kernel" in name:
            return rng.normal(0.0, np.sqrt(1.0 / np.prod(leaf.shape[:-1])), leaf.shape)
        if "scale" in name:
            return 1.0 + rng.normal(0.0, 0.1, leaf.shape)
        return rng.normal(0.0, 0.5 if "token" in name or "pos" in name else 0.1, leaf.shape)

    variables = jax.tree_util.tree_map_with_path(
        lambda path, leaf: jnp.asarray(fill(path, leaf), jnp.float32), shapes)
    return model, variables, rng.normal(size=(2, SIZE, SIZE, 3)).astype(np.float32)


def test_test_vit_attention_features_and_rollout_match_numpy():
    model, variables, images = _test_vit()
    explained = rollout.with_attention(model, "test_vit")
    heads, depth = 2, 6  # test_vit: ViTConfig(16, 64, 6, 2)
    expected_attention, expected_logits = numpy_vit(variables["params"], images.astype(np.float64),
                                                    heads)
    forward = jax.jit(lambda v, x: explained.apply(v, x, train=False))
    logits, out = forward(variables, jnp.asarray(images))
    np.testing.assert_allclose(np.asarray(logits), expected_logits, rtol=1e-3, atol=1e-3)
    for i in range(depth):
        np.testing.assert_allclose(np.asarray(out[attention(i)]), expected_attention[i],
                                   rtol=1e-3, atol=1e-5, err_msg=f"block {i}")

    maps, rolled_logits = jax.jit(lambda v, x: rollout.rollout(explained, v, x, 2))(
        variables, jnp.asarray(images))
    assert maps.shape == (2, 2, 10, 10)  # (images, targets, patch grid)
    np.testing.assert_array_equal(np.asarray(maps[:, 0]), np.asarray(maps[:, 1]))
    np.testing.assert_allclose(np.asarray(rolled_logits), np.asarray(logits), rtol=1e-6)
    for b in range(2):
        # the slow definition's products are too slow at 101 tokens: the same rule by matrices
        flow = np.eye(101)
        for weights in expected_attention:
            mixed = weights[b].mean(0) + np.eye(101)
            flow = (mixed / mixed.sum(-1, keepdims=True)) @ flow
        np.testing.assert_allclose(np.asarray(maps[b, 0]), flow[0, 1:].reshape(10, 10),
                                   rtol=1e-3, atol=1e-6)


def test_attention_is_no_feature_unless_asked():
    model, variables, images = _test_vit()
    _, out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables,
                            jax.ShapeDtypeStruct(images.shape, jnp.float32))
    assert not any(name.startswith("attention") for name in out)
    assert attention(3) not in models.feature_names("test_vit")


@pytest.mark.parametrize("arch", ["small_cnn", "test_convnext"])
def test_non_vits_refuse_rollout_in_one_line(arch):
    model = models.create_model(arch, num_outputs=2)
    with pytest.raises(ValueError, match=f"^attention rollout needs a Vision Transformer; {arch} "
                                         f"has no attention layers") as error:
        rollout.with_attention(model, arch)
    assert "\n" not in str(error.value)
