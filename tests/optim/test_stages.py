"""Every registered backbone is cut into stages that cover it exactly, in forward order."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
from flax import traverse_util

from jaxtl import models
from jaxtl.core.errors import ConfigError
from jaxtl.models import stages_of
from jaxtl.optim.stages import stage_of


def trace_backbone(arch: str) -> tuple[dict, list[tuple[str, ...]]]:
    """Abstract variables of the model and the paths of the backbone modules in call order."""
    model = models.create_model(arch, num_outputs=3)
    calls: list[tuple[str, ...]] = []

    def record(next_fun, args, kwargs, context):
        path = context.module.path
        if context.method_name == "__call__" and len(path) > 1 and path[0] == "backbone":
            calls.append(path[1:])
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):  # 75 px: the smallest input inception_v3 takes
        variables = jax.eval_shape(lambda: model.init(
            {"params": jax.random.PRNGKey(0)}, jnp.zeros((1, 75, 75, 3)), train=False))
    return variables, calls


@pytest.mark.parametrize("arch", models.list_models())
def test_stages_cover_every_backbone_variable_once_in_forward_order(arch):
    stages = stages_of(arch)
    variables, calls = trace_backbone(arch)
    for collection in variables.values():
        for path in traverse_util.flatten_dict(collection.get("backbone", {})):
            stage_of(stages, "/".join(path))  # raises unless exactly one stage matches
    # every module the backbone calls (Dropout and pooling layers without variables too)
    # belongs to a stage, and the stages are first entered in the order they are listed
    first_call: dict[str, int] = {}
    for index, path in enumerate(calls):
        first_call.setdefault(stage_of(stages, "/".join(path)), index)
    assert list(first_call) == [stage.name for stage in stages]


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
