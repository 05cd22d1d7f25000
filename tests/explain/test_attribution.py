"""Integrated gradients' completeness, and the target scores both methods explain."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtl.core import tasks
from jaxtl.explain import attribution
from jaxtl.models import Classifier
from jaxtl.models.heads import make_head
from jaxtl.models.small_cnn import SmallCNN

TASK = tasks.multilabel(["finding", "three-way", "other"], three_way=(False, True, False))


@functools.cache
def _small_cnn():
    """A two-block small_cnn (the family's code, 16 and 32 channels) for TASK's 5 outputs with
    He-normal kernels and random BatchNorm statistics (NumPy, no compiled init), and two random
    16 px images."""
    model = Classifier(backbone=SmallCNN(widths=(16, 32)),
                       head=make_head("linear", num_outputs=TASK.num_outputs, dropout=0.0))
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)),
                                               train=False))
    rng = np.random.default_rng(0)

    def fill(path, leaf):
        name = jax.tree_util.keystr(path)
        if "kernel" in name:
            return rng.normal(0.0, np.sqrt(2.0 / np.prod(leaf.shape[:-1])), leaf.shape)
        return np.ones(leaf.shape) if "scale" in name or "var" in name else \
            rng.normal(0.0, 0.1, leaf.shape)

    variables = jax.tree_util.tree_map_with_path(
        lambda path, leaf: jnp.asarray(fill(path, leaf), jnp.float32), shapes)
    return model, variables, jnp.asarray(rng.normal(size=(2, 16, 16, 3)), jnp.float32)


def test_selectors_pick_the_label_logits():
    targets = attribution.label_targets(TASK, ["three-way", "0"])
    assert targets.names == ("three-way", "finding") and targets.indices == (1, 0)
    # outputs: finding | three-way (negative, positive, uncertain) | other
    np.testing.assert_array_equal(targets.fixed, [[0, -1, 1, 0, 0], [1, 0, 0, 0, 0]])
    assert attribution.label_targets(TASK, []).names == TASK.names
    logits = jnp.zeros((3, 5))
    assert attribution.label_targets(TASK, []).selectors(logits, None).shape == (3, 3, 5)
    with pytest.raises(ValueError, match="not one of the task's labels"):
        attribution.label_targets(TASK, ["nothing"])


def test_class_targets():
    task = tasks.multiclass(["0", "1", "2"])
    logits = jnp.array([[0.0, 3.0, 1.0], [2.0, 0.0, 1.0]])
    labels = jnp.array([2, 0])
    predicted = attribution.class_targets(task, None)
    np.testing.assert_array_equal(predicted.selectors(logits, labels)[:, 0],
                                  [[0, 1, 0], [1, 0, 0]])
    np.testing.assert_array_equal(predicted.explained(logits, labels), [[1], [0]])
    true = attribution.class_targets(task, "label")
    np.testing.assert_array_equal(true.explained(logits, labels), [[2], [0]])
    fixed = attribution.class_targets(task, "2")
    np.testing.assert_array_equal(fixed.selectors(logits, labels)[:, 0], [[0, 0, 1]] * 2)
    with pytest.raises(ValueError, match="predicted or label"):
        attribution.class_targets(task, "7")


def test_trapezoid_weights_integrate_linear_functions_exactly():
    weights = attribution.trapezoid_weights(4)
    points = np.linspace(0, 1, 5)
    assert weights.sum() == pytest.approx(1.0)
    assert (weights * (3 * points + 1)).sum() == pytest.approx(2.5)


def test_integrated_gradients_complete_within_one_percent():
    """With the default step count, the attributions of each image and target sum to
    score(x) - score(baseline), computed here from the model's logits at the image and at the
    flat zero-input image, within 1%."""
    model, variables, images = _small_cnn()
    targets = attribution.label_targets(TASK, ["finding", "three-way"])
    result = jax.jit(lambda v, x: attribution.integrated_gradients(
        model, v, x, targets, None))(variables, images)
    # one compiled forward for both (op-by-op dispatch is slow on a busy CPU)
    forward = jax.jit(lambda v, x: model.apply(v, x, train=False)[0])
    logits, baseline = forward(variables, images), forward(variables, jnp.zeros_like(images))
    expected = np.stack([logits[:, 0] - baseline[:, 0],
                         (logits[:, 2] - logits[:, 1]) - (baseline[:, 2] - baseline[:, 1])],
                        axis=1)
    assert np.abs(expected).min() > 0.05  # a difference worth explaining
    sums = np.asarray(result.attributions).sum(axis=(2, 3, 4))
    np.testing.assert_allclose(sums, expected, rtol=0.01)
    np.testing.assert_allclose(result.score_difference, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.completeness_gap, sums - expected, atol=1e-4)
    np.testing.assert_allclose(result.maps, np.maximum(
        np.asarray(result.attributions).sum(-1), 0.0), rtol=1e-5, atol=1e-7)
    assert result.maps.shape == (2, 2, 16, 16)
