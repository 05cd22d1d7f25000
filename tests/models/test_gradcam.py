"""Grad-CAM in every model family: the default feature is a feature map the model returns (every
family's first member, from the registry), and the maps against an independent computation at
that default, the Grad-CAM stage's output after its activation (what pytorch-grad-cam users
target on timm's models): a module's output captured with Flax's `capture_intermediates` at the
module stated here, the activation stated here applied to it (which must equal the feature the
model returns), the gradient of the target logit with respect to it taken through the family's
layers after it written out here, pooled, weighted and rectified. Where the stage's own feature
is taken before the activation, Grad-CAM at the stage's name (the pre-activation choice) is
checked the same way.

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

from jaxtl.explain.attribution import Targets, feature_map_shape, gradcam
from jaxtl.models import (
    Classifier,
    create_model,
    families,
    gradcam_feature,
    gradcam_stage,
)
from jaxtl.models.densenet import DenseNet
from jaxtl.models.efficientnet import EfficientNet
from jaxtl.models.heads import make_head
from jaxtl.models.nfnet import NormFreeResNet
from jaxtl.models.resnetv2 import ResNetV2
from jaxtl.models.vgg import VGG
from jaxtl.models.vit import LAYER_NORM_EPS, VisionTransformer, ViTConfig


@pytest.mark.parametrize("arch", [members[0] for members in families().values()])
def test_default_feature_is_a_feature_map_the_model_returns(arch):
    """Traced at 128 px (no computation), with the variables the zoo tests trace anyway."""
    model = create_model(arch, num_outputs=1000)
    shape = feature_map_shape(model, traced_init(arch).variables, (1, 128, 128, 3),
                              gradcam_feature(arch))
    assert len(shape) == 4 and min(shape[1:3]) >= 2


def test_a_stage_that_is_no_map_is_a_clear_error():
    """VGG's pre_logits stage (fc6/fc7) is returned as the pooled vector, not as a map."""
    model = create_model("vgg16", num_outputs=1000)
    with pytest.raises(ValueError, match="needs a feature map"):
        feature_map_shape(model, traced_init("vgg16").variables, (1, 64, 64, 3), "pre_logits")


def _max_pool_2(a):
    h, w, k = a.shape
    return a[:h // 2 * 2, :w // 2 * 2].reshape(h // 2, 2, w // 2, 2, k).max((1, 3))


def _conv_valid(a, layer):
    out = jax.lax.conv_general_dilated(a[None], layer["kernel"], (1, 1), "VALID",
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))[0]
    return out + layer["bias"]


def _vgg_tail(a, backbone):
    """The fifth max-pool (7x7 left at 224 px), fc6 as a 7x7 conv, fc7, their ReLUs, mean."""
    x = _max_pool_2(a)
    x = jax.nn.relu(_conv_valid(x, backbone["pre_logits_fc1"]))
    return jax.nn.relu(_conv_valid(x, backbone["pre_logits_fc2"])).mean((0, 1))


def _small(backbone):
    return Classifier(backbone=backbone, head=make_head("linear", num_outputs=3, dropout=0.0))


def _identity(a):
    return a


def _mean(a, p):
    return a.mean((0, 1))


ALREADY_ACTIVATED = None  # the module's output already is after its activation (a ReLU)
# Families whose Grad-CAM stage ends in a residual sum, with no activation after it: the
# default feature is the stage's own, the captured module's output in the layout the
# "activation" of their case gives (ViT: the patch tokens as a grid).
NO_ACTIVATION = ("vit", "convnext")


def _layer_norm(x, p, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / jnp.sqrt(var + eps) * p["scale"] + p["bias"]


def _patch_grid(tokens):
    """(N, 1 + 16, D) tokens -> the 4x4 patch grid (64 px, patch 16), class token removed."""
    return tokens[:, 1:].reshape(tokens.shape[0], 4, 4, tokens.shape[-1])

# family: (model, input side, the family's first member, the module whose output is captured,
# the activation that gives the default feature from it, the layers from the default feature
# (h, w, K) to the pooled features given the backbone's params)
CASES = {
    # the last block of layer4 ends in its ReLU: pytorch-grad-cam's `layer4[-1]`
    "resnet": (create_model("resnet18", num_outputs=3), 64, "resnet18", "layer4_1",
               ALREADY_ACTIVATED, _mean),
    # Mixed_7c concatenates its branches' ConvBN + ReLU outputs: timm's `Mixed_7c`
    "inception": (create_model("inception_v3", num_outputs=3), 107, "inception_v3",
                  "Mixed_7c", ALREADY_ACTIVATED, _mean),
    "small_cnn": (create_model("small_cnn", num_outputs=3), 64, "small_cnn", "block4_bn",
                  jax.nn.relu, lambda a, p: _max_pool_2(a).mean((0, 1))),
    # block5's last conv and its ReLU (timm's features.29); pre_logits (fc6/fc7) is the
    # classifier MLP
    "vgg": (_small(VGG(cfg=(8, 8, "M", 8, 8, "M", 8, 8, 8, "M", 8, 8, 8, "M", 8, 8, 8, "M"),
                       hidden=16)), 224, "vgg16", "features_28", jax.nn.relu, _vgg_tail),
    # norm5 and its ReLU: timm's BatchNormAct2d `norm5`
    "densenet": (_small(DenseNet((1, 1, 1, 1), growth_rate=8, bn_size=2)), 64, "densenet121",
                 "features_norm5", jax.nn.relu, _mean),
    # conv_head's norm and its SiLU: timm's BatchNormAct2d `bn2`
    "efficientnet": (_small(EfficientNet(width=0.25, depth=0.1, padding="same", bn_eps=1e-3)), 64,
                     "efficientnet_b0", "bn2", jax.nn.silu, _mean),
    # the last block and the final ReLU: timm's `final_act`
    "nfnet": (_small(NormFreeResNet((1, 1, 1, 1))), 64, "nf_resnet50", "stages_3_0", jax.nn.relu,
              _mean),
    # BiT's final norm (it belongs to the last stage) and its ReLU: timm's GroupNormAct `norm`
    "resnetv2": (_small(ResNetV2((1, 1, 1, 1))), 64, "resnetv2_50x1_bit", "norm", jax.nn.relu,
                 _mean),
    # the last block's patch tokens (block4 of five, test_vit's default name), averaged, then
    # fc_norm: MAE's layout, where the grid reaches the logits (the class-token layout's
    # default is the grid before the last block: tests/models/test_vit.py)
    "vit": (_small(VisionTransformer(ViTConfig(16, 32, 5, 2, img_size=64, global_pool="avg"))),
            64, "test_vit", "blocks_4", _patch_grid,
            lambda a, p: _layer_norm(a.mean((0, 1)), p["fc_norm"], LAYER_NORM_EPS)),
    # the last stage's last block (a residual sum), then the mean and timm's head.norm
    "convnext": (create_model("test_convnext", num_outputs=3), 64, "test_convnext", "stages_3",
                 _identity, lambda a, p: _layer_norm(a.mean((0, 1)), p["head"]["norm"], 1e-5)),
}


def test_every_family_has_a_case():
    """(The UNet is no family: a segmentation model on these backbones, not explained.)"""
    assert set(CASES) == set(families())
    for family, (_, _, member, _, activation, _) in CASES.items():
        assert member in families()[family]
        # an activated tap exactly where the stage's own feature is before the activation
        assert (gradcam_feature(member) == gradcam_stage(member).name) == (
            activation is ALREADY_ACTIVATED or family in NO_ACTIVATION), family


def _expected(activations, logits_of):
    """Grad-CAM written out: (2, 3, h, w) from the feature (2, h, w, K) and the map from it to
    the logits. (The Jacobian compiled as one program: run op by op, it compiled dozens of
    kernels, half of these tests' time.)"""
    weights = fast_jit(jax.vmap(jax.jacrev(logits_of)))(activations).mean((2, 3))  # (2, 3, K)
    return np.maximum(np.einsum("bhwk,btk->bthw", activations, weights), 0.0)


def _assert_close(maps, expected):
    np.testing.assert_allclose(maps, expected, rtol=1e-4, atol=1e-5 * max(expected.max(), 1.0))
    assert np.asarray(maps).max() > 0


@pytest.mark.parametrize("family", sorted(CASES))
def test_gradcam_equals_an_independent_computation(family):
    model, size, member, module, activation, tail = CASES[family]
    variables = random_variables(init_shapes(model, size), seed=1)
    x = images(2, size, seed=2)
    default, stage = gradcam_feature(member), gradcam_stage(member).name
    targets = Targets(("a", "b", "c"), fixed=np.eye(3), indices=(0, 1, 2), num_outputs=3)

    def run(v, x):
        labels = jnp.zeros(2, jnp.int32)
        maps, logits = gradcam(model, v, x, default, targets, labels)
        before = gradcam(model, v, x, stage, targets, labels)[0] if default != stage else maps
        (_, out), state = model.apply(v, x, train=False, mutable=["intermediates"],
                                      capture_intermediates=lambda m, _: m.path == ("backbone", module))
        captured = state["intermediates"]["backbone"][module]["__call__"][0]
        return maps, before, logits, captured, out[default], out[stage]

    maps, before, logits, captured, returned, returned_stage = fast_jit(run)(variables, x)
    if activation is ALREADY_ACTIVATED:
        activation = _identity
        assert np.min(captured) >= 0 and np.any(np.asarray(captured) == 0)  # a ReLU's output
    elif family not in NO_ACTIVATION:  # the stage's name keeps the value before the activation
        np.testing.assert_array_equal(returned_stage, captured)
    # the default feature is the stated module's output after the stated activation
    activations = activation(captured)
    np.testing.assert_allclose(returned, activations, rtol=1e-6, atol=1e-6)
    head = variables["params"]["head"]["fc"]
    backbone = variables["params"]["backbone"]
    assert maps.shape == (2, 3, *activations.shape[1:3])

    def logits_of(a):
        return tail(a, backbone) @ head["kernel"] + head["bias"]

    # the layers after the default feature, as written here, are the model's
    np.testing.assert_allclose(fast_jit(jax.vmap(logits_of))(activations), logits, rtol=1e-4,
                               atol=1e-4)
    _assert_close(maps, _expected(activations, logits_of))
    if family not in NO_ACTIVATION:
        # the pre-activation choice, by the stage's name: the activation is part of what follows
        _assert_close(before, _expected(captured, lambda a: logits_of(activation(a))))
