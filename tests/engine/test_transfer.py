"""Pretrained checkpoints (format, load, load_into), the channel rule, and chained runs."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_config
from jax import lax
from random_weights import random_variables

from jaxtl import models
from jaxtl.config import demo_settings as demo
from jaxtl.config import validation as configuration
from jaxtl.core.errors import TransferError
from jaxtl.engine import transfer
from jaxtl.engine.build import build
from jaxtl.models.std_layers import ScaledStdConv2d, StdConv2d
from jaxtl.training import loop as train
from jaxtl.workdir import files as rundir
from jaxtl.workdir import pretrained


def conv(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return np.asarray(lax.conv_general_dilated(
        jnp.asarray(x), jnp.asarray(kernel), (1, 1), "SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=lax.Precision.HIGHEST))


def grey(channels: int, seed: int = 0, size: int = 9) -> np.ndarray:
    g = np.random.default_rng(seed).normal(size=(1, size, size, 1)).astype(np.float32)
    return np.repeat(g, channels, axis=-1)


@pytest.mark.parametrize("old,new", [(3, 1), (3, 10), (3, 12), (1, 3), (3, 3)])
def test_plain_kernel_rule_is_the_scaled_mean_and_keeps_grey_activations(old, new):
    kernel = np.random.default_rng(1).normal(size=(3, 3, old, 5)).astype(np.float32)
    adapted, gain = transfer.adapt_input_kernel(kernel, new)
    assert gain is None and adapted.shape == (3, 3, new, 5)
    expected = kernel.mean(axis=2, keepdims=True) * old / new  # the documented formula
    for c in range(new):
        np.testing.assert_allclose(adapted[:, :, c:c + 1], expected, rtol=1e-6)
    # A grey image on every channel gives the activations the old kernel gave it.
    np.testing.assert_allclose(conv(grey(new), adapted), conv(grey(old), kernel),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("new", [1, 10])
def test_scaled_std_conv_rule_keeps_grey_activations_through_the_gain(new):
    """NF-ResNet's stem standardises its kernel; the adapted gain restores the scale."""
    module = ScaledStdConv2d(8, 7, gamma=1.7, eps=1e-5)
    rng = np.random.default_rng(2)
    params = {"kernel": rng.normal(0.1, 0.3, (7, 7, 3, 8)).astype(np.float32),
              "gain": rng.uniform(0.5, 1.5, 8).astype(np.float32),
              "bias": rng.normal(size=8).astype(np.float32)}
    kernel, gain = transfer.adapt_input_kernel(params["kernel"], new, params["gain"])
    before = module.apply({"params": params}, grey(3, size=16))
    after = module.apply({"params": params | {"kernel": kernel, "gain": gain}}, grey(new, size=16))
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-4)
    plain, _ = transfer.adapt_input_kernel(params["kernel"], new)  # without the gain: not equal
    wrong = module.apply({"params": params | {"kernel": plain}}, grey(new, size=16))
    assert np.abs(np.asarray(wrong) - np.asarray(before)).max() > 1e-2


def test_std_conv_rule_keeps_each_filters_grey_pattern():
    """BiT's StdConv2d has no gain: each filter's response to a grey image keeps its spatial
    pattern (correlation 1 with the original) while its scale is set by the standardisation."""
    module = StdConv2d(6, 3, eps=1e-8)
    kernel = np.random.default_rng(3).normal(size=(3, 3, 3, 6)).astype(np.float32)
    adapted, _ = transfer.adapt_input_kernel(kernel, 1)
    before = np.asarray(module.apply({"params": {"kernel": kernel}}, grey(3, size=12)))
    after = np.asarray(module.apply({"params": {"kernel": adapted}}, grey(1, size=12)))
    for o in range(6):
        corr = np.corrcoef(before[..., o].ravel(), after[..., o].ravel())[0, 1]
        assert corr == pytest.approx(1.0, abs=1e-5)


def small_checkpoint(tmp_path, arch="resnet18", num_classes=7, channels=3):
    model = models.create_model(arch, num_outputs=num_classes)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, channels)),
                                               train=False))
    # every leaf, statistics included, so that a lost or misplaced leaf changes the logits
    variables = random_variables(shapes, seed=1, noise=0.05)
    info = pretrained.PretrainedInfo(arch=arch, num_classes=num_classes, in_channels=channels,
                                     resolution=32, mean=(0.5,) * channels, std=(0.25,) * channels,
                                     source={"kind": "test"})
    return pretrained.save_pretrained(tmp_path / "ckpt", info, variables), model, variables


@pytest.fixture(scope="module")
def resnet18_checkpoint(tmp_path_factory):
    """small_checkpoint's ResNet-18, written once for the tests that only read it."""
    return small_checkpoint(tmp_path_factory.mktemp("resnet18"))


def fresh_variables(model, channels: int, seed: int = 0):
    """`model`'s variables for 32 px images of `channels` channels, drawn with NumPy (an eager
    `init` of ResNet-18 costs seconds; what load_into keeps or replaces is all that counts)."""
    return random_variables(jax.eval_shape(lambda: model.init(
        jax.random.key(0), jnp.zeros((1, 32, 32, channels)), train=False)), seed=seed)


def test_pretrained_round_trip_gives_the_same_logits(resnet18_checkpoint):
    path, model, variables = resnet18_checkpoint
    loaded_model, loaded = transfer.load(path)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 32, 32, 3)), jnp.float32)
    apply = jax.jit(lambda v, x: model.apply(v, x, train=False)[0])  # the same module twice
    assert loaded_model == model
    np.testing.assert_array_equal(apply(loaded, x), apply(variables, x))
    meta = json.loads((path / pretrained.PRETRAINED_FILE).read_text())
    assert meta["format"] == pretrained.FORMAT and meta["arch"] == "resnet18"
    assert meta["num_classes"] == 7 and meta["mean"] == [0.5] * 3
    assert pretrained.read_info(path).std == (0.25,) * 3


def test_load_with_fewer_channels_equals_the_rgb_model_on_grey(resnet18_checkpoint):
    path, model, variables = resnet18_checkpoint
    grey_model, grey_variables = transfer.load(path, in_channels=1)
    g = jnp.asarray(grey(1, size=32))
    np.testing.assert_allclose(grey_model.apply(grey_variables, g, train=False)[0],
                               model.apply(variables, jnp.repeat(g, 3, axis=-1), train=False)[0],
                               rtol=1e-4, atol=1e-4)


def test_load_into_drops_the_head_and_adapts_the_first_conv(resnet18_checkpoint):
    path, _, saved = resnet18_checkpoint
    fresh = fresh_variables(models.create_model("resnet18", num_outputs=2, head="mlp_128"), 10,
                            seed=5)
    merged = transfer.load_into(path, fresh, in_channels=10)
    backbone = saved["params"]["backbone"]
    expected, _ = transfer.adapt_input_kernel(np.asarray(backbone["conv1"]["kernel"]), 10)
    np.testing.assert_allclose(merged["params"]["backbone"]["conv1"]["kernel"], expected)
    np.testing.assert_array_equal(merged["params"]["backbone"]["layer4_1"]["conv2"]["kernel"],
                                  backbone["layer4_1"]["conv2"]["kernel"])
    np.testing.assert_array_equal(merged["batch_stats"]["backbone"]["bn1"]["var"],
                                  saved["batch_stats"]["backbone"]["bn1"]["var"])
    np.testing.assert_array_equal(merged["params"]["head"]["hidden_0"]["kernel"],
                                  fresh["params"]["head"]["hidden_0"]["kernel"])


def test_load_into_without_in_channels_reports_the_channel_mismatch(resnet18_checkpoint):
    path, _, _ = resnet18_checkpoint
    fresh = fresh_variables(models.create_model("resnet18", num_outputs=2), 1)
    with pytest.raises(TransferError, match=r"mis-shaped \(1\): params/backbone/conv1/kernel "
                                            r"\(7, 7, 3, 64\) -> \(7, 7, 1, 64\)"):
        transfer.load_into(path, fresh)


def test_load_into_another_architecture_lists_missing_and_unexpected(tmp_path):
    path, _, _ = small_checkpoint(tmp_path, arch="resnet34")
    fresh = fresh_variables(models.create_model("resnet18", num_outputs=2), 3)
    with pytest.raises(TransferError, match=r"unexpected \(\d+\): params/backbone/layer1_2"):
        transfer.load_into(path, fresh, in_channels=3)


def test_damaged_or_foreign_checkpoints_fail_with_a_message(tmp_path):
    path, _, _ = small_checkpoint(tmp_path)
    meta = json.loads((path / pretrained.PRETRAINED_FILE).read_text())
    (path / pretrained.PRETRAINED_FILE).write_text(json.dumps(meta | {"arch": "resnet34"}))
    with pytest.raises(TransferError, match=r"does not fit model: missing \(\d+\): "
                                            r"params/backbone/layer1_2"):
        transfer.load(path)
    (path / pretrained.PRETRAINED_FILE).write_text(json.dumps(meta | {"format": "other"}))
    with pytest.raises(TransferError, match="is not a jaxtl-pretrained v1 file"):
        transfer.load(path)
    with pytest.raises(TransferError, match="neither a converted pretrained checkpoint"):
        transfer.load_into(tmp_path / "nothing", {})


@pytest.mark.slow
def test_runs_chain_across_tasks_and_channels(tmp_path):
    """EyePACS (RGB, 5 grades) -> ChestX-ray14 (grey, multi-label), as CXR14 -> CheXpert ->
    EyePACS would chain: the second run starts from the first run's backbone."""
    # no bootstrap intervals (scikit-learn rescoring each split): this test reads none
    first = tiny_config(tmp_path / "a", overrides={"demo.bootstrap_samples": 0})
    first.demo.epochs = 1
    train.train_and_evaluate(first, tmp_path / "a" / "workdir")
    saved = transfer.load_variables(tmp_path / "a" / "workdir")

    second = tiny_config(tmp_path / "b", "cxr14",  # small_cnn, as the first
                         {"demo.bootstrap_samples": 0})
    second.model.init = str(tmp_path / "a" / "workdir")
    demo.apply(second)
    configuration.validate(second)
    run, state = build(second)
    outputs = run.splits.task.num_outputs
    assert second.data.channels == 1 and run.splits.task.kind == "multilabel" and outputs != 5
    backbone = jax.device_get(state.params["backbone"])
    old = saved["params"]["backbone"]
    np.testing.assert_allclose(backbone["block1_conv"]["kernel"],
                               transfer.adapt_input_kernel(old["block1_conv"]["kernel"], 1)[0])
    np.testing.assert_array_equal(backbone["block2_conv"]["kernel"], old["block2_conv"]["kernel"])
    assert state.params["head"]["fc"]["kernel"].shape == (256, outputs)

    results = train.train_and_evaluate(second, tmp_path / "b" / "workdir")
    assert results["config"]["model"]["init"] == str(tmp_path / "a" / "workdir")
    module, variables = transfer.load(tmp_path / "b" / "workdir")  # and B can seed a third run
    logits, _ = module.apply(variables, jnp.zeros((2, 32, 32, 1)), train=False)
    assert logits.shape == (2, outputs)


# --- The input a converted checkpoint expects -------------------------------------------------

CKPT_MEAN, CKPT_STD = (0.1, 0.2, 0.3), (0.4, 0.5, 0.6)


def converted_small_cnn(tmp_path, channels=3, resolution=64, arch="small_cnn"):
    """A converted checkpoint of small_cnn's backbone (the head is the new task's anyway)."""
    model = models.create_model(arch, num_outputs=2)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(3), jnp.zeros((1, 32, 32, channels)),
                                               train=False))
    rng = np.random.default_rng(3)
    variables = {name: {"backbone": jax.tree_util.tree_map(
        lambda leaf: 1.0 + 0.05 * rng.standard_normal(leaf.shape, np.float32), tree["backbone"])}
        for name, tree in shapes.items()}  # near 1: BatchNorm variances too
    info = pretrained.PretrainedInfo(arch=arch, num_classes=0, in_channels=channels,
                                     resolution=resolution, mean=CKPT_MEAN[:channels],
                                     std=CKPT_STD[:channels],
                                     source={"kind": "timm", "file": "w.safetensors"})
    return pretrained.save_pretrained(tmp_path / "ckpt", info, variables)


def test_a_run_from_a_converted_checkpoint_takes_its_mean_and_std(tmp_path):
    path = converted_small_cnn(tmp_path)
    config = tiny_config(tmp_path, overrides={"model.init": str(path)})
    info, notes = transfer.take_preprocessing(config)
    assert (config.data.mean, config.data.std) == (CKPT_MEAN, CKPT_STD)
    assert info == pretrained.read_info(path)
    assert notes == [
        (f"model.init={path} (timm w.safetensors): data.mean {CKPT_MEAN} and data.std "
         f"{CKPT_STD} from the checkpoint"),
        (f"model.init={path} (timm w.safetensors): trained at 64 px; this run uses "
         f"data.resolution=32 (--config.data.resolution=64 matches the checkpoint)")]
    assert config.data.resolution == 32  # only suggested


def test_mean_or_std_the_config_sets_stay(tmp_path):
    path = converted_small_cnn(tmp_path)
    imagenet = tiny_config(tmp_path).data.mean
    given = tiny_config(tmp_path, overrides={"model.init": str(path)})  # the default, but given
    _, notes = transfer.take_preprocessing(given, set_by_user={"data.mean"})
    assert (given.data.mean, given.data.std) == (imagenet, CKPT_STD)
    assert notes[0].endswith(f"data.std {CKPT_STD} from the checkpoint; data.mean "
                             f"{tuple(imagenet)} as the config sets them")
    in_file = tiny_config(tmp_path, overrides={"model.init": str(path),
                                               "data.std": (0.3, 0.3, 0.3)})  # not the default
    transfer.take_preprocessing(in_file)
    assert (in_file.data.mean, in_file.data.std) == (CKPT_MEAN, (0.3, 0.3, 0.3))


def test_other_channels_keep_the_configs_statistics_and_another_arch_is_refused(tmp_path):
    path = converted_small_cnn(tmp_path)
    grey = tiny_config(tmp_path, "cxr14", overrides={"model.init": str(path)})
    before = (tuple(grey.data.mean), tuple(grey.data.std))
    _, notes = transfer.take_preprocessing(grey)
    assert (tuple(grey.data.mean), tuple(grey.data.std)) == before and grey.data.channels == 1
    assert "its mean/std are for 3 channel(s), the data have 1" in notes[0]
    other = tiny_config(tmp_path, overrides={"model.init": str(path), "model.arch": "resnet18"})
    with pytest.raises(TransferError, match=r"holds small_cnn weights, but model.arch is "
                                            r"resnet18: set --config.model.arch=small_cnn"):
        transfer.take_preprocessing(other)
    assert transfer.take_preprocessing(tiny_config(tmp_path)) == (None, [])


@pytest.mark.slow
def test_a_run_records_the_checkpoint_and_normalises_with_its_statistics(tmp_path):
    path = converted_small_cnn(tmp_path)
    # no bootstrap intervals (scikit-learn rescoring each split): this test reads none
    run_settings = {"model.init": str(path), "demo.epochs": 1, "demo.bootstrap_samples": 0}
    config = tiny_config(tmp_path, overrides=run_settings)
    train.train_and_evaluate(config, tmp_path / "workdir")
    results = rundir.read_results(tmp_path / "workdir")
    assert results["pretrained"] == json.loads(
        json.dumps(dataclasses.asdict(pretrained.read_info(path))))
    saved = json.loads((tmp_path / "workdir" / rundir.CONFIG_FILE).read_text())
    assert (tuple(saved["data"]["mean"]), tuple(saved["data"]["std"])) == (CKPT_MEAN, CKPT_STD)
    # the same command resumes: the checkpoint's statistics again, so the same config
    assert train.train_and_evaluate(tiny_config(tmp_path, overrides=run_settings),
                                    tmp_path / "workdir")["pretrained"] == results["pretrained"]
