"""LoRA adapters (jaxtl/models/lora.py): the adapted forward equals the plain model on merged
kernels W + (alpha / rank) A B (written out with NumPy here), on a tiny ViT's attention and MLP
and a ResNet's strided 1x1 convolutions; the initial adapters change nothing; only adapters
and the head get gradients; targets that name nothing or a layer LoRA cannot adapt are refused.
A LoRA run trained, loaded, evaluated and exported: tests/engine/test_lora_runs.py; its
checkpoints restored onto the base: tests/workdir/test_checkpoints.py."""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest
from flax import traverse_util
from zoo_helpers import fast_jit, init_shapes, random_variables
from zoo_helpers import images as random_images

from jaxtl.models import create_model, lora

ALL_VIT = ("qkv", "proj", "fc1", "fc2")
# One setting for every test_vit check, so that the compiled forwards are shared (compiling
# dominates on a CPU); dropout acts only with train=True.
VIT = lora.LoraSettings(rank=4, alpha=8.0, dropout=0.5, targets=ALL_VIT)


@functools.cache
def model_and_variables(arch: str, size: int = 32):
    model = create_model(arch, num_outputs=3)
    return model, random_variables(init_shapes(model, size)), random_images(2, size)


@functools.cache
def compiled(model, train: bool):
    return fast_jit(lambda v, x, k: model.apply(v, x, train=train, rngs={"dropout": k})[0])


def forward(model, variables, images, train=False, key=0):
    """Logits of `model` (a Linen model or a LoraModel), compiled once per model and mode."""
    return np.asarray(compiled(model, train)(variables, images, jax.random.key(key)))


def adapted(model, variables, images, settings: lora.LoraSettings, b_std: float = 0.05):
    """Params with adapters on `settings.targets`, B drawn nonzero (as after training)."""
    targets = lora.find_targets(model, variables, jax.ShapeDtypeStruct(images.shape,
                                                                       images.dtype),
                                settings.targets)
    params = lora.init_adapters(jax.random.key(2), variables["params"], targets, settings.rank)
    flat = traverse_util.flatten_dict(params)
    rng = np.random.default_rng(10)
    for path in sorted(p for p in flat if p[-1] == lora.LORA_B):
        flat[path] = (b_std * rng.standard_normal(flat[path].shape)).astype(np.float32)
    return targets, traverse_util.unflatten_dict(flat)


def merged_by_numpy(params, scale: float):
    """W + scale * A @ B for every adapted kernel, reshaped to the kernel (1x1 convolutions)."""
    flat = {path: np.asarray(value) for path, value in traverse_util.flatten_dict(params).items()}
    out = {path: value for path, value in flat.items() if path[-1] not in lora.ADAPTER_LEAVES}
    for path in [p[:-1] for p in flat if p[-1] == lora.LORA_A]:
        delta = scale * flat[(*path, lora.LORA_A)].astype(np.float64) @ flat[
            (*path, lora.LORA_B)].astype(np.float64)
        kernel = out[(*path, "kernel")]
        out[(*path, "kernel")] = (kernel + delta.reshape(kernel.shape)).astype(np.float32)
    return traverse_util.unflatten_dict(out)


def test_the_vit_forward_with_adapters_equals_the_merged_weights():
    model, variables, images = model_and_variables("test_vit")
    targets, params = adapted(model, variables, images, VIT)
    assert len(targets) == 4 * 6  # test_vit: 6 blocks
    assert targets[("backbone", "blocks_0", "attn", "qkv")] == (64, 192)
    logits = forward(lora.LoraModel(model, VIT), {"params": params}, images)
    expected = forward(model, {"params": merged_by_numpy(params, VIT.scale)}, images)
    plain = forward(model, variables, images)
    np.testing.assert_allclose(logits, expected, atol=2e-5, rtol=1e-5)
    assert np.abs(logits - plain).max() > 1e-2  # the adapters act
    np.testing.assert_allclose(
        lora.merge(params, VIT.scale)["backbone"]["blocks_1"]["mlp"]["fc2"]["kernel"],
        merged_by_numpy(params, VIT.scale)["backbone"]["blocks_1"]["mlp"]["fc2"]["kernel"],
        atol=1e-6)


def test_strided_one_by_one_convolutions_take_adapters():
    """ResNet18's downsample convolutions: 1x1, stride 2."""
    model, variables, images = model_and_variables("resnet18")
    settings = lora.LoraSettings(rank=2, alpha=4.0, targets=("downsample_conv",))
    targets, params = adapted(model, variables, images, settings)
    assert sorted(path[1] for path in targets) == ["layer2_0", "layer3_0", "layer4_0"]
    variables_with = {"params": params, "batch_stats": variables["batch_stats"]}
    logits = forward(lora.LoraModel(model, settings), variables_with, images)
    expected = forward(model, {"params": merged_by_numpy(params, 2.0),
                               "batch_stats": variables["batch_stats"]}, images)
    np.testing.assert_allclose(logits, expected, atol=2e-5, rtol=1e-5)


def test_fresh_adapters_start_from_the_pretrained_outputs_with_peft_init():
    model, variables, images = model_and_variables("test_vit")
    targets = lora.find_targets(model, variables, images, VIT.targets)
    params = lora.init_adapters(jax.random.key(3), variables["params"], targets, VIT.rank)
    qkv = params["backbone"]["blocks_0"]["attn"]["qkv"]
    assert qkv[lora.LORA_A].shape == (64, 4) and qkv[lora.LORA_B].shape == (4, 192)
    assert not np.any(qkv[lora.LORA_B])
    a = np.asarray(qkv[lora.LORA_A])  # kaiming_uniform(a=sqrt(5)): U(-1/sqrt(in), 1/sqrt(in))
    assert np.abs(a).max() <= 1 / np.sqrt(64) and a.std() > 0.5 / np.sqrt(3 * 64)
    assert not np.array_equal(a, params["backbone"]["blocks_1"]["attn"]["qkv"][lora.LORA_A])
    np.testing.assert_array_equal(forward(lora.LoraModel(model, VIT), {"params": params},
                                          images), forward(model, variables, images))


def test_only_the_adapters_and_the_head_get_gradients():
    model, variables, images = model_and_variables("test_vit")
    _, params = adapted(model, variables, images, VIT)
    wrapped = lora.LoraModel(model, VIT)

    def loss(p):
        return wrapped.apply({"params": p}, images, train=True,
                             rngs={"dropout": jax.random.key(5)})[0].sum()

    grads = traverse_util.flatten_dict(fast_jit(jax.grad(loss))(params))
    moved = {path for path, g in grads.items() if np.any(np.asarray(g))}
    assert moved == {path for path in grads if lora.is_trainable(path)}
    assert any(path[-1] == lora.LORA_A for path in moved)
    assert lora.labels(params)["backbone"]["blocks_0"]["attn"]["qkv"] == {
        "kernel": lora.FROZEN, "bias": lora.FROZEN, lora.LORA_A: lora.TRAINABLE,
        lora.LORA_B: lora.TRAINABLE}


def test_adapter_dropout_acts_in_training_only():
    model, variables, images = model_and_variables("test_vit")
    _, params = adapted(model, variables, images, VIT)
    wrapped = lora.LoraModel(model, VIT)

    def logits(train, key):
        return forward(wrapped, {"params": params}, images, train, key)

    assert np.abs(logits(True, 1) - logits(True, 2)).max() > 1e-4
    np.testing.assert_array_equal(logits(False, 1), logits(False, 2))


@pytest.mark.parametrize("arch, targets, message", [
    ("test_vit", ("qkv", "fc3"), r"names fc3, which no .* named .*fc1, fc2, .*qkv"),
    ("small_cnn", ("block1_conv",), r"block1_conv is a 3x3 convolution, not 1x1"),
    ("test_vit", ("fc",), r"names fc, which no"),  # the head is not a target: it trains whole
])
def test_targets_that_name_no_adaptable_layer_are_refused(arch, targets, message):
    model, variables, images = model_and_variables(arch)
    with pytest.raises(lora.TargetError, match=message):
        lora.find_targets(model, variables, images, targets)
