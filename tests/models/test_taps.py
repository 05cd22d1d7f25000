"""Perturbations of named features (jaxtl/models/taps.py): what Grad-CAM differentiates."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from zoo_helpers import fast_jit, images, init_shapes, random_variables

from jaxtl.models import BACKBONE, PRE_LOGITS, STEM, Classifier, create_model, perturbations
from jaxtl.models.heads import make_head
from jaxtl.models.nfnet import NormFreeResNet
from jaxtl.models.small_cnn import SmallCNN
from jaxtl.models.taps import activated


def test_gradient_of_a_logit_with_respect_to_the_pooled_features_is_the_heads_weight():
    model = create_model("small_cnn", num_outputs=3)
    variables = random_variables(init_shapes(model, 32), seed=1)
    x = images(2, 32, seed=2)

    def logit_sum(delta, v, x, o):
        logits, _ = model.apply({**v, **perturbations(BACKBONE, {PRE_LOGITS: delta})}, x,
                                train=False)
        return logits[:, o].sum()

    grad = fast_jit(jax.grad(logit_sum), static_argnums=3)
    for o in range(3):
        g = grad(jnp.zeros((2, 256)), variables, x, o)
        kernel = np.asarray(variables["params"]["head"]["fc"]["kernel"])
        np.testing.assert_allclose(g, np.broadcast_to(kernel[:, o], (2, 256)), rtol=1e-6)


def test_a_perturbation_is_added_to_its_feature_only_and_changes_what_follows():
    """NFNet's `stem` feature shares its name with the `stem` module: no clash."""
    model = Classifier(NormFreeResNet((1, 1, 1, 1)), make_head("linear", num_outputs=2))
    variables = random_variables(init_shapes(model, 32), seed=1)
    x = images(2, 32, seed=2)

    @fast_jit
    def run(v, delta):
        plain = model.apply(v, x, train=False)
        return plain, model.apply({**v, **perturbations(BACKBONE, {STEM: delta})}, x,
                                  train=False)

    _, shapes = jax.eval_shape(lambda v: model.apply(v, x, train=False), variables)
    delta = jnp.asarray(np.random.default_rng(3).normal(size=shapes[STEM].shape), jnp.float32)
    (logits, out), (moved_logits, moved) = run(variables, delta)
    np.testing.assert_allclose(moved[STEM], np.asarray(out[STEM]) + np.asarray(delta),
                               rtol=1e-6, atol=1e-6)
    assert not np.allclose(moved["stages_0"], out["stages_0"])
    assert not np.allclose(moved_logits, logits)
    unperturbed = run(variables, jnp.zeros_like(delta))[1]
    np.testing.assert_array_equal(unperturbed[0], logits)


def test_the_activated_tap_follows_the_stage_through_its_activation():
    """small_cnn taps its last block's BN as `block2` (two blocks here) and the BN's ReLU as
    `activated("block2")`: the value is the ReLU of the stage's, and by the chain rule a logit's
    gradient with respect to the stage's feature is the gradient with respect to the activated
    one where the BN's output is positive, 0 elsewhere, so both perturbations act on the
    forward pass."""
    model = Classifier(SmallCNN(widths=(8, 16)), make_head("linear", num_outputs=2))
    variables = random_variables(init_shapes(model, 16), seed=1)
    x = images(2, 16, seed=2)
    stage, after = "block2", activated("block2")
    assert after == "block2_act"
    _, shapes = jax.eval_shape(lambda v: model.apply(v, x, train=False), variables)

    @fast_jit
    def gradients(v):
        def logit(deltas):
            logits, out = model.apply({**v, **perturbations(BACKBONE, deltas)}, x, train=False)
            return logits[:, 1].sum(), out
        zeros = {name: jnp.zeros(shapes[name].shape) for name in (stage, after)}
        return jax.grad(logit, has_aux=True)(zeros)

    grads, out = gradients(variables)
    before = np.asarray(out[stage])
    np.testing.assert_array_equal(out[after], np.maximum(before, 0))
    np.testing.assert_allclose(grads[stage], np.where(before > 0, grads[after], 0), rtol=1e-6,
                               atol=1e-9)
    assert np.abs(grads[stage]).max() > 0 and (before < 0).any()
