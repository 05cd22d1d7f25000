"""model.batch_norm_scope on two devices: 'device' normalises each device's shard with its own
BatchNorm statistics, 'global' with the whole batch's (numpy, per shard and whole)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import xla_flags

from jaxtl.config.base import base_config
from jaxtl.config.validation import validate
from jaxtl.core.errors import ConfigError
from jaxtl.models.layers import BATCH_NORM_SCOPES

SCRIPT = pathlib.Path(__file__).with_name("batch_norm_scopes.py")
sys.path.insert(0, str(SCRIPT.parent))
from batch_norm_scopes import MeansThroughDense, batch

EPSILON, MOMENTUM = 1e-5, 0.9


def expected(groups: list[np.ndarray], labels: np.ndarray) -> dict:
    """Loss and running averages when each group of images is normalised with its own
    statistics (biased variance, as flax), the averages then averaged over the groups."""
    logits, means, variances = [], [], []
    for images in groups:
        mean = images.mean(axis=(0, 1, 2), dtype=np.float64)
        var = images.astype(np.float64).var(axis=(0, 1, 2))
        logits.append(((images - mean) / np.sqrt(var + EPSILON)).mean(axis=(1, 2)))
        means.append(mean)
        variances.append(var)
    logits = np.concatenate(logits)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_softmax[np.arange(len(labels)), labels].mean()
    return {"loss": loss,
            "mean": (1 - MOMENTUM) * np.mean(means, axis=0),
            "var": MOMENTUM * 1.0 + (1 - MOMENTUM) * np.mean(variances, axis=0)}


@pytest.fixture(scope="module")
def two_devices() -> dict:
    env = dict(os.environ, XLA_FLAGS=xla_flags(2),
               JAX_PLATFORMS="cpu", PYTHONPATH=str(SCRIPT.parents[2]))  # this checkout
    result = subprocess.run([sys.executable, str(SCRIPT)], check=False, env=env,
                            capture_output=True, text=True, timeout=300, cwd=SCRIPT.parents[2])
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("scope", BATCH_NORM_SCOPES)
def test_each_scope_normalises_with_its_own_statistics(two_devices, scope):
    assert (two_devices["devices"], two_devices["shards"]) == (2, 2)
    images, labels = batch()["image"], batch()["label"]
    groups = [images[:4], images[4:]] if scope == "device" else [images]
    want = expected(groups, labels)
    got = two_devices[scope]
    assert got["loss"] == pytest.approx(want["loss"], rel=1e-5)
    np.testing.assert_allclose(got["mean"], want["mean"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["var"], want["var"], rtol=1e-5)


def test_the_scopes_differ_on_this_batch(two_devices):
    """The batch's halves differ, so the check above tells the scopes apart (its loss
    tolerance is about 1e-5)."""
    assert abs(two_devices["device"]["loss"] - two_devices["global"]["loss"]) > 1e-3
    assert not np.allclose(two_devices["device"]["var"], two_devices["global"]["var"],
                           rtol=1e-2)


def test_without_batchnorm_both_scopes_take_the_whole_batchs_gradient_step(two_devices):
    """A dense layer on the images' channel means, one SGD step of 0.1 (no momentum) from
    the same initial kernel: the gradient of the mean softmax cross-entropy over all eight images
    (numpy), under either scope (the per-device forward's gradients are summed over the
    devices)."""
    images, labels = batch()["image"], batch()["label"]
    features = images.mean(axis=(1, 2)).astype(np.float64)
    params = MeansThroughDense().init(jax.random.split(jax.random.PRNGKey(0), 3)[0],
                                      np.zeros((1, 4, 4, 3), np.float32), train=False)
    kernel = np.asarray(params["params"]["Dense_0"]["kernel"], np.float64)
    bias = np.asarray(params["params"]["Dense_0"]["bias"], np.float64)
    logits = features @ kernel + bias
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    probabilities[np.arange(8), labels] -= 1.0
    gradient = features.T @ probabilities / 8
    for scope in BATCH_NORM_SCOPES:
        np.testing.assert_allclose(two_devices[scope]["dense_kernel"], kernel - 0.1 * gradient,
                                   rtol=1e-5, atol=1e-6)


def test_an_unknown_scope_is_refused():
    config = base_config("eyepacs")
    config.model.batch_norm_scope = "host"
    with pytest.raises(ConfigError, match="batch_norm_scope"):
        validate(config)
