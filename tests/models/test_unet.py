"""The UNet: skip maps read from the backbone's stages, per-pixel logits on every zoo family,
and an encoder loaded from a classification checkpoint computing what the classifier's
backbone computes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from zoo_helpers import init_shapes, random_variables

from jaxtl import models
from jaxtl.engine import transfer
from jaxtl.models.unet import UNet, encoder_stages
from jaxtl.workdir import pretrained


def traced(arch: str, size: int, classes: int = 3) -> tuple[tuple, list[tuple], dict]:
    """(logits shape, skip shapes, variables' shapes) of a UNet on `arch`, traced without
    computing."""
    model = models.create_unet(arch, num_outputs=classes, decoder_channels=(8,))
    images = jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32)
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), images)
    logits, _ = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, images)
    skips = jax.eval_shape(lambda v, x: model.apply(v, x, train=False,
                                                    method=UNet.encoder_features),
                           variables, images)
    return logits.shape, [s.shape for s in skips], variables


def shapes_of(arch: str, size: int, classes: int = 3) -> tuple[tuple, list[tuple]]:
    """(logits shape, skip shapes) of a UNet on `arch`, traced without computing."""
    return traced(arch, size, classes)[:2]


def test_resnet_skips_are_the_stage_outputs_one_per_grid():
    logits, skips = shapes_of("resnet18", 64)
    assert logits == (2, 64, 64, 3)
    assert skips == [(2, 32, 32, 64), (2, 16, 16, 64), (2, 8, 8, 128), (2, 4, 4, 256),
                     (2, 2, 2, 512)]


@pytest.mark.slow
@pytest.mark.parametrize("arch,size", [
    ("vgg16", 64), ("densenet121", 64), ("efficientnet_b0", 64), ("inception_v3", 75),
    ("nf_resnet50", 64), ("resnetv2_50x1_bit", 64), ("small_cnn", 32)])
def test_every_family_gives_per_pixel_logits(arch, size):
    logits, skips = shapes_of(arch, size)
    assert logits == (2, size, size, 3)
    grids = [s[1] for s in skips]
    assert grids == sorted(grids, reverse=True) and len(set(grids)) == len(grids)
    assert all(s[1] < size for s in skips[1:])


def test_vgg_skips_stop_before_fc6_fc7():
    assert [s.name for s in encoder_stages("vgg16")][-1] == "block5"
    assert [s.name for s in encoder_stages("resnet50")] == [s.name for s in
                                                          models.stages_of("resnet50")]


def test_encoder_loaded_from_a_classifier_checkpoint_computes_its_stage_outputs(tmp_path):
    classifier = models.create_model("resnet18", num_outputs=5)
    images = jnp.asarray(np.random.default_rng(0).normal(size=(2, 48, 48, 3)), jnp.float32)
    variables = random_variables(init_shapes(classifier, 48), seed=1)
    info = pretrained.PretrainedInfo(arch="resnet18", num_classes=5, in_channels=3,
                                     resolution=48, mean=(0.5,) * 3, std=(0.25,) * 3,
                                     source={"kind": "test"})
    path = pretrained.save_pretrained(tmp_path / "ckpt", info, variables)

    unet = models.create_unet("resnet18", num_outputs=4, decoder_channels=(16, 8))
    fresh = random_variables(init_shapes(unet, 48), seed=2)
    loaded = transfer.load_into(path, fresh, in_channels=3)
    skips = jax.jit(lambda v, x: unet.apply(v, x, train=False,
                                           method=UNet.encoder_features))(loaded, images)

    # The classifier's own stage outputs: the features it returns under the stages' names.
    def classifier_maps(variables, images):
        _, out = classifier.apply(variables, images, train=False)
        return [out[stage.name] for stage in models.stages_of("resnet18")], out[models.PRE_LOGITS]

    maps, pooled = jax.jit(classifier_maps)(variables, images)
    assert len(skips) == len(maps) == 5
    for skip, activation in zip(skips, maps):
        np.testing.assert_allclose(np.asarray(skip), np.asarray(activation), rtol=1e-5,
                                   atol=1e-5)
    np.testing.assert_allclose(np.asarray(skips[-1]).mean(axis=(1, 2)), np.asarray(pooled),
                               rtol=1e-5, atol=1e-5)
    # The decoder (the head) stays as initialised.
    np.testing.assert_array_equal(np.asarray(loaded["params"]["head"]["logits"]["kernel"]),
                                  np.asarray(fresh["params"]["head"]["logits"]["kernel"]))
