"""Stages of the backbones, by name and path.

That every registered backbone is cut into stages that cover it exactly, in forward order, is
checked in tests/models/test_zoo.py (test_stages_cover_every_backbone_variable_once_in_forward_order),
which reads the traced `init` of every architecture that its other tests trace anyway."""

from __future__ import annotations

import pytest

from jaxtl.core.errors import ConfigError
from jaxtl.models import stages_of
from jaxtl.optim.stages import stage_of


def test_stage_names_of_a_few_families():
    assert [s.name for s in stages_of("resnet50")] == ["stem", "layer1", "layer2", "layer3",
                                                       "layer4"]
    assert [s.name for s in stages_of("vgg16_bn")] == ["block1", "block2", "block3", "block4",
                                                       "block5", "pre_logits"]
    vgg = stages_of("vgg16_bn")
    assert stage_of(vgg, "features_4/mean") == "block1"  # BN of the 2nd conv of block 1
    assert stage_of(vgg, "features_7/kernel") == "block2"  # conv after the 1st max-pool
    assert stage_of(stages_of("vgg16"), "features_5/kernel") == "block2"
    assert stage_of(stages_of("densenet121"), "features_transition2_norm/scale") == "denseblock2"
    assert stage_of(stages_of("resnetv2_50x1_bit"), "norm/scale") == "stages_3"


def test_a_path_in_no_stage_is_reported():
    with pytest.raises(ValueError, match="belongs to 0 stages"):
        stage_of(stages_of("resnet18"), "layer9_0/conv1/kernel")


def test_an_architecture_without_stages_is_a_config_error():
    with pytest.raises(ConfigError, match="no stages defined"):
        stages_of("not_an_arch")
