"""The ConvNeXt family: timm's parameter counts, stages, minimum input size and stochastic depth
in training. Parity of the logits with timm: tests/tools/test_convert_weights.py."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from zoo_helpers import fast_jit, images, init_shapes, random_variables

from jaxtl.models import create_model, gradcam_feature, stages_of

# timm 1.0.31: sum(p.numel() for p in timm.create_model(name).parameters()), 1000 classes.
TIMM_PARAMETERS = {"test_convnext": 272_128, "convnext_tiny": 28_589_128,
                   "convnext_small": 50_223_688, "convnext_base": 88_591_464}


@pytest.mark.parametrize("arch", sorted(TIMM_PARAMETERS))
def test_parameter_counts_are_timms(arch):
    model = create_model(arch, num_outputs=1000)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)),
                                               train=False))
    assert sum(math.prod(x.shape) for x in jax.tree.leaves(shapes["params"])) == \
        TIMM_PARAMETERS[arch]


def test_stages_and_grad_cam_default():
    assert [s.name for s in stages_of("convnext_tiny")] == ["stem", "stage0", "stage1", "stage2",
                                                            "stage3", "norm"]
    assert gradcam_feature("convnext_tiny") == "stage3"


def test_inputs_below_32_px_are_refused():
    model = create_model("test_convnext", num_outputs=2)
    with pytest.raises(ValueError, match="at least 32x32 pixels"):
        jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 31, 64, 3)),
                                          train=False))


def test_stochastic_depth_drops_whole_branches_in_training_only():
    """With drop_path near 1 the last block's branch is dropped for (almost) every image, so
    its training-mode output differs from evaluation's; at rate 0 both agree."""
    x = images(2, 32, seed=1)
    outputs = {}
    for rate in (0.0, 0.95):
        model = create_model("test_convnext", num_outputs=3, drop_path=rate)
        variables = random_variables(init_shapes(model, 32), seed=0)
        run = fast_jit(lambda v, x, m=model: (
            m.apply(v, x, train=True, rngs={"dropout": jax.random.key(3)})[0],
            m.apply(v, x, train=False)[0]))
        outputs[rate] = run(variables, x)
    np.testing.assert_allclose(*outputs[0.0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(outputs[0.95][1], outputs[0.0][1], rtol=1e-5, atol=1e-5)
    assert np.abs(np.asarray(outputs[0.95][0] - outputs[0.95][1])).max() > 1e-3
