"""Grad-CAM in every model family: the default stage is a feature map the model returns (every
family's first member, from the registry), and the maps against an independent computation:
the stage's output captured with Flax's `capture_intermediates` at the module stated here
(which must equal the feature the model returns under the stage's name), the gradient of the
target logit with respect to it taken through the family's layers after the stage written out
here, pooled, weighted and rectified.

The numbers are checked on each family's first member where it compiles quickly (resnet18,
small_cnn, inception_v3) and otherwise on a small model of the family's own code with the same
stage names (fewer blocks, narrower layers).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from zoo_helpers import fast_jit, images, init_shapes, random_variables, traced_init

from jaxtl.explain.attribution import Targets, gradcam, stage_map_shape
from jaxtl.models import Classifier, create_model, families, gradcam_stage
from jaxtl.models.densenet import DenseNet
from jaxtl.models.efficientnet import EfficientNet
from jaxtl.models.heads import make_head
from jaxtl.models.nfnet import NormFreeResNet
from jaxtl.models.resnetv2 import ResNetV2
from jaxtl.models.vgg import VGG


@pytest.mark.parametrize("arch", [members[0] for members in families().values()])
def test_default_stage_is_a_feature_map_the_model_returns(arch):
    """Traced at 128 px (no computation), with the variables the zoo tests trace anyway."""
    model = create_model(arch, num_outputs=1000)
    shape = stage_map_shape(model, traced_init(arch).variables, (1, 128, 128, 3),
                            gradcam_stage(arch).name)
    assert len(shape) == 4 and min(shape[1:3]) >= 2


def test_a_stage_that_is_no_map_is_a_clear_error():
    """VGG's pre_logits stage (fc6/fc7) is returned as the pooled vector, not as a map."""
    model = create_model("vgg16", num_outputs=1000)
    with pytest.raises(ValueError, match="needs a feature map"):
        stage_map_shape(model, traced_init("vgg16").variables, (1, 64, 64, 3), "pre_logits")


def _relu_mean(a):
    return jax.nn.relu(a).mean((0, 1))


def _max_pool_2(a):
    h, w, k = a.shape
    return a[:h // 2 * 2, :w // 2 * 2].reshape(h // 2, 2, w // 2, 2, k).max((1, 3))


def _conv_valid(a, layer):
    out = jax.lax.conv_general_dilated(a[None], layer["kernel"], (1, 1), "VALID",
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))[0]
    return out + layer["bias"]


def _vgg_tail(a, backbone):
    """ReLU, the fifth max-pool (7x7 left at 224 px), fc6 as a 7x7 conv, fc7, ReLUs, mean."""
    x = _max_pool_2(jax.nn.relu(a))
    x = jax.nn.relu(_conv_valid(x, backbone["pre_logits_fc1"]))
    return jax.nn.relu(_conv_valid(x, backbone["pre_logits_fc2"])).mean((0, 1))


def _small(backbone):
    return Classifier(backbone=backbone, head=make_head("linear", num_outputs=3, dropout=0.0))


# family: (model, input side, stage of the family's first member, the module whose output the
# stage's feature is, layers from the stage's output (h, w, K) to the pooled features given the
# backbone's params)
CASES = {
    "resnet": (create_model("resnet18", num_outputs=3), 64, "resnet18",
               "layer4_1",  # the last block of layer4
               lambda a, p: a.mean((0, 1))),
    "small_cnn": (create_model("small_cnn", num_outputs=3), 64, "small_cnn", "block4_bn",
                  lambda a, p: _max_pool_2(jax.nn.relu(a)).mean((0, 1))),
    "inception": (create_model("inception_v3", num_outputs=3), 107, "inception_v3",
                  "Mixed_7c", lambda a, p: a.mean((0, 1))),
    # block5's last conv: pre_logits (fc6/fc7) is the classifier MLP
    "vgg": (_small(VGG(cfg=(8, 8, "M", 8, 8, "M", 8, 8, 8, "M", 8, 8, 8, "M", 8, 8, 8, "M"),
                       hidden=16)), 224, "vgg16", "features_28", _vgg_tail),
    # the last norm, before its ReLU
    "densenet": (_small(DenseNet((1, 1, 1, 1), growth_rate=8, bn_size=2)), 64, "densenet121",
                 "features_norm5", lambda a, p: _relu_mean(a)),
    # conv_head's norm, before its SiLU
    "efficientnet": (_small(EfficientNet(width=0.25, depth=0.1, padding="same", bn_eps=1e-3)), 64,
                     "efficientnet_b0", "bn2", lambda a, p: jax.nn.silu(a).mean((0, 1))),
    "nfnet": (_small(NormFreeResNet((1, 1, 1, 1))), 64, "nf_resnet50", "stages_3_0",
              lambda a, p: _relu_mean(a)),
    # BiT's final norm belongs to its last stage
    "resnetv2": (_small(ResNetV2((1, 1, 1, 1))), 64, "resnetv2_50x1_bit", "norm",
                 lambda a, p: _relu_mean(a)),
}


@pytest.mark.parametrize("family", sorted(CASES))
def test_gradcam_equals_an_independent_computation(family):
    model, size, member, module, tail = CASES[family]
    variables = random_variables(init_shapes(model, size), seed=1)
    x = images(2, size, seed=2)
    stage = gradcam_stage(member).name
    targets = Targets(("a", "b", "c"), fixed=np.eye(3), indices=(0, 1, 2), num_outputs=3)

    def both(v, x):
        maps, logits = gradcam(model, v, x, stage, targets, jnp.zeros(2, jnp.int32))
        (_, out), state = model.apply(v, x, train=False, mutable=["intermediates"],
                                      capture_intermediates=lambda m, _: m.path == ("backbone", module))
        return maps, logits, state["intermediates"]["backbone"][module]["__call__"][0], out[stage]

    maps, logits, activations, returned = fast_jit(both)(variables, x)
    # the feature the model returns for the stage is the stated module's output
    np.testing.assert_array_equal(returned, activations)
    head = variables["params"]["head"]["fc"]
    backbone = variables["params"]["backbone"]
    assert maps.shape == (2, 3, *activations.shape[1:3])

    def logits_of(a):
        return tail(a, backbone) @ head["kernel"] + head["bias"]

    # the layers after the stage, as written here, are the model's
    np.testing.assert_allclose(jax.vmap(logits_of)(activations), logits, rtol=1e-4, atol=1e-4)

    # d logit_t / d A for every image and target, A's mean over the map: (2, 3, K)
    weights = jax.vmap(jax.jacrev(logits_of))(activations).mean((2, 3))
    expected = np.maximum(np.einsum("bhwk,btk->bthw", activations, weights), 0.0)
    np.testing.assert_allclose(maps, expected, rtol=1e-4, atol=1e-5 * max(expected.max(), 1.0))
    assert np.asarray(maps).max() > 0
