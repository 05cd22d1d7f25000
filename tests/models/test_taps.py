"""Perturbations of named features (jaxtl/models/taps.py): what Grad-CAM differentiates."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from zoo_helpers import fast_jit, images, init_shapes, random_variables

from jaxtl.models import BACKBONE, PRE_LOGITS, STEM, Classifier, create_model, perturbations
from jaxtl.models.heads import make_head
from jaxtl.models.nfnet import NormFreeResNet


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
