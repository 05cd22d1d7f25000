"""ResNet backbones: timm-compatible layout and counts, zero-init residual blocks, BatchNorm, bfloat16."""

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
    logits_and_state,
    parameter_count,
    random_variables,
    traced_init,
    train_mode_gradients,
)

from jaxtl.models import Classifier, create_model
from jaxtl.models.heads import make_head
from jaxtl.models.layers import max_pool2d
from jaxtl.models.resnet import BasicBlock, Bottleneck, ResNet

TIMM_PARAM_COUNTS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}


def _paths(tree) -> set[str]:
    return {leaf_name(p) for p, _ in jax.tree_util.tree_leaves_with_path(tree)}


@pytest.fixture(scope="module")
def resnet18():
    model = create_model("resnet18", num_outputs=5)
    return model, random_variables(init_shapes(model))


@pytest.fixture(scope="module")
def apply_eval(resnet18):
    model, _ = resnet18
    return fast_jit(lambda v, x: model.apply(v, x, train=False)[0])


@pytest.fixture(scope="module")
def apply_train(resnet18):
    model, _ = resnet18
    return fast_jit(lambda v, x: logits_and_state(model.apply(v, x, train=True, mutable=["batch_stats"])))


@pytest.mark.parametrize("name", sorted(TIMM_PARAM_COUNTS))
def test_param_count_matches_timm(name):
    variables = traced_init(name).variables
    assert parameter_count(variables) == TIMM_PARAM_COUNTS[name]


def test_bottleneck_variable_names():
    variables = init_shapes(create_model("resnet50", num_outputs=4))
    params = _paths(variables["params"])
    for path in (
        "backbone/conv1/kernel",
        "backbone/bn1/scale",
        "backbone/layer1_0/conv1/kernel",
        "backbone/layer1_0/conv3/kernel",
        "backbone/layer1_0/downsample_conv/kernel",  # 64 -> 256 channels at stride 1
        "backbone/layer2_0/downsample_conv/kernel",
        "backbone/layer4_2/bn3/bias",
        "head/fc/kernel",
        "head/fc/bias",
    ):
        assert path in params
    assert "backbone/layer1_1/downsample_conv/kernel" not in params
    assert not any(p.endswith("bias") for p in params if "conv" in p)
    assert set(variables["batch_stats"]) == {"backbone"}
    assert "backbone/layer3_0/downsample_bn/var" in _paths(variables["batch_stats"])
    assert "backbone/layer3_5/downsample_bn/var" not in _paths(variables["batch_stats"])
    backbone = variables["params"]["backbone"]
    assert backbone["conv1"]["kernel"].shape == (7, 7, 3, 64)  # HWIO
    assert backbone["layer2_0"]["conv2"]["kernel"].shape == (3, 3, 128, 128)
    assert variables["params"]["head"]["fc"]["kernel"].shape == (2048, 4)


def test_basic_block_variable_names(resnet18):
    params = _paths(resnet18[1]["params"])
    blocks = {p.split("/")[1] for p in params if p.startswith("backbone/layer")}
    assert blocks == {f"layer{i}_{j}" for i in range(1, 5) for j in range(2)}
    assert "backbone/layer1_0/conv2/kernel" in params
    assert "backbone/layer1_0/conv3/kernel" not in params
    assert "backbone/layer1_0/downsample_conv/kernel" not in params
    assert "backbone/layer2_0/downsample_conv/kernel" in params
    assert "backbone/layer2_0/downsample_bn/scale" in params
    assert "head/fc/kernel" in params


def _block_init(block, x):
    return fast_jit(lambda key, x: block.init(key, x, train=False))(jax.random.key(0), x)


@pytest.mark.parametrize("block, last_bn", [(BasicBlock, "bn2"), (Bottleneck, "bn3")])
def test_block_init_zeroes_last_bn_scale(block, last_bn):
    x = jnp.ones((1, 4, 4, 32))
    variables = _block_init(block(16, stride=2), x)
    params = variables["params"]
    np.testing.assert_array_equal(params[last_bn]["scale"], 0.0)
    np.testing.assert_array_equal(params["bn1"]["scale"], 1.0)
    np.testing.assert_array_equal(params["downsample_bn"]["scale"], 1.0)
    np.testing.assert_array_equal(variables["batch_stats"]["bn1"]["var"], 1.0)
    # kaiming_normal_(mode="fan_out", nonlinearity="relu"), as timm.
    kernel = np.asarray(params["conv1"]["kernel"])
    fan_out = np.prod(kernel.shape[:2]) * kernel.shape[-1]
    np.testing.assert_allclose(kernel.std(), np.sqrt(2.0 / fan_out), rtol=0.15)


@pytest.mark.parametrize("block", [BasicBlock(16), Bottleneck(4)])
def test_block_is_identity_at_init(block):
    x = jax.nn.relu(images(1, size=4, channels=16))
    y = fast_jit(lambda v, x: block.apply(v, x, train=False))(_block_init(block, x), x)
    np.testing.assert_allclose(y, x, atol=1e-6)


def test_feature_map_sizes_match_torch():
    model = create_model("resnet18", num_outputs=2)
    blocks = {"layer1_1", "layer2_1", "layer3_1", "layer4_1"}
    x = jnp.zeros((1, 224, 224, 3))

    def run():
        variables = model.init(jax.random.key(0), x, train=False)
        return model.apply(
            variables, x, train=False, capture_intermediates=lambda mdl, _: mdl.name in blocks | {"conv1"}
        )

    _, state = jax.eval_shape(run)
    found = state["intermediates"]["backbone"]
    assert found["conv1"]["__call__"][0].shape == (1, 112, 112, 64)
    for name, size, channels in zip(sorted(blocks), (56, 28, 14, 7), (64, 128, 256, 512)):
        assert found[name]["__call__"][0].shape == (1, size, size, channels)


def test_forward_and_features(resnet18, apply_eval):
    model, variables = resnet18
    logits = apply_eval(variables, images())
    assert logits.shape == (2, 5) and logits.dtype == jnp.float32
    assert np.isfinite(np.asarray(logits)).all()
    features = jax.eval_shape(
        lambda v, x: model.apply(v, x, train=False)[1]["pre_logits"], variables, images()
    )
    assert features.shape == (2, 512) and features.dtype == jnp.float32
    assert model.backbone.num_features == 512
    wide = create_model("resnet50", num_outputs=3)
    features = jax.eval_shape(
        lambda v, x: wide.apply(v, x, train=False)[1]["pre_logits"], init_shapes(wide), images()
    )
    assert features.shape == (2, 2048) and features.dtype == jnp.float32
    assert wide.backbone.num_features == 2048


def test_bfloat16_runs_close_to_float32(resnet18, apply_eval):
    _, variables = resnet18  # the same float32 variables serve either compute dtype
    model16 = create_model("resnet18", num_outputs=5, dtype="bfloat16")
    x = images()
    f16 = fast_jit(lambda v, x: model16.apply(v, x, train=False)[0])(variables, x)
    assert f16.dtype == jnp.float32 and np.isfinite(np.asarray(f16)).all()
    np.testing.assert_allclose(f16, apply_eval(variables, x), rtol=0.1, atol=0.1)


def test_train_updates_batch_stats_and_eval_uses_running_stats(resnet18, apply_eval, apply_train):
    _, variables = resnet18
    x = images(seed=1) * 3.0 + 1.0
    logits, state = apply_train(variables, x)
    assert logits.shape == (2, 5)
    old, new = variables["batch_stats"]["backbone"], state["batch_stats"]["backbone"]
    for path in (("bn1", "mean"), ("bn1", "var"), ("layer4_1", "bn2", "mean"), ("layer2_0", "downsample_bn", "var")):
        a, b = old, new
        for key in path:
            a, b = a[key], b[key]
        assert not np.allclose(a, b), path

    trained = {"params": variables["params"], "batch_stats": state["batch_stats"]}
    a, b, c = images(1, seed=2), images(1, seed=3), images(1, seed=4)
    ab, ac = jnp.concatenate([a, b]), jnp.concatenate([a, c])
    np.testing.assert_allclose(apply_eval(trained, ab)[0], apply_eval(trained, ac)[0], rtol=1e-5, atol=1e-6)
    # In train mode the batch statistics couple the samples.
    assert not np.allclose(apply_train(trained, ab)[0][0], apply_train(trained, ac)[0][0], atol=1e-5)


def test_zeroed_last_bn_scale_stops_the_branch_gradients():
    """As after `init` (zero_init_last): the residual branches get no gradient until their last
    BN scale moves away from zero; everything else still does (test_zoo.py: with the scales
    non-zero, every parameter does; on its 12-channel images, so the compilation is shared)."""
    model = create_model("resnet18", num_outputs=5)
    variables = random_variables(init_shapes(model, channels=12))
    blocks = [f"backbone/layer{i}_{j}" for i in range(1, 5) for j in range(2)]
    last_bn = {f"{b}/bn2/scale" for b in blocks}
    at_init = jax.tree_util.tree_map_with_path(
        lambda p, v: v * 0 if leaf_name(p) in last_bn else v, variables["params"])
    grads, _ = train_mode_gradients(model, {**variables, "params": at_init},
                                    images(channels=12, seed=5), jnp.array([1, 3]))
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(grads))
    zero = {leaf_name(p) for p, leaf in jax.tree_util.tree_leaves_with_path(grads)
            if not np.any(np.asarray(leaf))}
    expected = {f"{b}/{leaf}" for b in blocks
                for leaf in ("conv1/kernel", "bn1/scale", "bn1/bias", "conv2/kernel")}
    assert zero == expected


def test_bottleneck_resnet_gradients_finite_and_nonzero():
    """ResNet50/101/152's code path (Bottleneck blocks, projection shortcuts) forward and backward.

    One bottleneck per stage: the deeper models repeat these blocks, and compiling their own
    backward passes costs tens of seconds each on a 2-core CPU.
    """
    model = Classifier(ResNet(Bottleneck, (1, 1, 1, 1)), make_head("linear", num_outputs=5))
    variables = random_variables(init_shapes(model))
    grads, (logits, state) = train_mode_gradients(model, variables, images(seed=6), jnp.array([0, 4]))
    assert_finite_logits_and_every_gradient_nonzero(grads, logits, (2, 5))
    assert _paths(grads) == _paths(variables["params"])
    assert "backbone/layer1_0/downsample_conv/kernel" in _paths(grads)  # 64 -> 256 channels
    old, new = variables["batch_stats"]["backbone"], state["batch_stats"]["backbone"]
    assert not np.allclose(old["layer4_0"]["bn3"]["var"], new["layer4_0"]["bn3"]["var"])


def _torch_max_pool_reference(x: np.ndarray, k: int, s: int, p: int) -> np.ndarray:
    """NumPy torch.nn.MaxPool2d: windows only see in-bounds values (padding acts as -inf)."""
    n, h, w, c = x.shape
    out_h, out_w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    out = np.empty((n, out_h, out_w, c), x.dtype)
    for i in range(out_h):
        for j in range(out_w):
            r0, c0 = i * s - p, j * s - p
            window = x[:, max(r0, 0) : r0 + k, max(c0, 0) : c0 + k]
            out[:, i, j] = window.max(axis=(1, 2))
    return out


@pytest.mark.parametrize("shape", [(2, 5, 6, 3), (1, 8, 7, 2)])
def test_max_pool_matches_torch(shape):
    x = -np.abs(np.random.default_rng(0).normal(size=shape)).astype(np.float32) - 0.1  # all negative
    expected = _torch_max_pool_reference(x, 3, 2, 1)
    got = np.asarray(max_pool2d(jnp.asarray(x), 3, 2, 1))
    np.testing.assert_array_equal(got, expected)
    assert (got < 0).all()
    zero_padded = _torch_max_pool_reference(np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), 3, 2, 0)
    assert zero_padded.shape == expected.shape and not np.array_equal(zero_padded, expected)
