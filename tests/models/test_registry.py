"""Registry: names, errors, extension, the Classifier layout and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from zoo_helpers import fast_jit

from jaxtl.models import HEADS, Architecture, Classifier, Stage, create_model, list_models, registry

REPO_ROOT = Path(__file__).resolve().parents[2]
RESNETS = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]


class _TinyBackbone(nn.Module):
    """Registered only inside a test: pooled features from one 1x1 conv + BN, and the named
    features (jaxtl/models/taps.py) of its one stage."""

    dtype: jnp.dtype = jnp.float32

    min_input_size = 1

    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Conv(8, (1, 1), dtype=self.dtype, name="conv")(x)
        x = nn.BatchNorm(use_running_average=not train, dtype=self.dtype, name="bn")(x)
        pooled = jnp.mean(x, axis=(1, 2))  # stays in `dtype`: the Classifier casts to float32
        return pooled, {"stem": x, "all": x, "pre_logits": pooled}


_TINY = Architecture(_TinyBackbone, stages=(Stage("all", "(conv|bn)/"),), timm=None)


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTERED", dict(registry._REGISTERED))
    registry.register("tiny", _TINY, family="test")
    return "tiny"


def test_list_models():
    models = list_models()
    assert isinstance(models, list) and models == sorted(models)
    assert set(RESNETS) <= set(models)


def test_create_model_builds_classifier():
    model = create_model("resnet50", num_outputs=7, head="mlp_128", dropout=0.2, dtype="bfloat16")
    assert isinstance(model, Classifier)
    assert model.backbone.dtype == jnp.bfloat16  # the head computes in float32 (test_heads.py)
    assert model.head.num_outputs == 7 and model.head.dropout == 0.2 and tuple(model.head.hidden) == (128,)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", jnp.float32, jnp.bfloat16, np.dtype("float32")])
def test_dtype_spellings(dtype):
    model = create_model("resnet18", num_outputs=2, dtype=dtype)
    assert jnp.dtype(model.backbone.dtype) == jnp.dtype(dtype)


def test_unknown_architecture():
    with pytest.raises(ValueError, match="resnet19") as info:
        create_model("resnet19", num_outputs=2)
    for name in RESNETS:
        assert name in str(info.value)


def test_unknown_head():
    with pytest.raises(ValueError, match="mlp_3") as info:
        create_model("resnet18", num_outputs=2, head="mlp_3")
    for name in HEADS:
        assert name in str(info.value)


@pytest.mark.parametrize("dtype", ["float16", "fp32", jnp.float16, "int8"])
def test_unknown_dtype(dtype):
    with pytest.raises(ValueError, match="float32.*bfloat16") as info:
        create_model("resnet18", num_outputs=2, dtype=dtype)
    assert "float16" in str(info.value) or str(dtype) in str(info.value)


def test_bad_num_outputs():
    with pytest.raises(ValueError, match="num_outputs"):
        create_model("resnet18", num_outputs=0)


def test_register_backbone_and_variable_layout(tiny):
    assert tiny in list_models()
    with pytest.raises(ValueError, match="already registered"):
        registry.register(tiny, _TINY, family="test")
    model = create_model(tiny, num_outputs=3, head="mlp_128", dtype="bfloat16")
    x = jnp.ones((2, 8, 8, 5))
    variables = fast_jit(lambda key, x: model.init(key, x, train=False))(jax.random.key(0), x)
    assert set(variables) == {"params", "batch_stats"}
    assert set(variables["params"]) == {"backbone", "head"}
    assert set(variables["params"]["head"]) == {"hidden_0", "fc"}
    assert set(variables["batch_stats"]) == {"backbone"}
    logits = fast_jit(lambda v, x: model.apply(v, x, train=False)[0])(variables, x)
    assert logits.shape == (2, 3) and logits.dtype == jnp.float32
    features = jax.eval_shape(lambda v, x: model.apply(v, x, train=False)[1]["pre_logits"], variables, x)
    assert features.shape == (2, 8) and features.dtype == jnp.float32
    _, state = jax.eval_shape(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]), variables, x)
    assert set(state["batch_stats"]) == {"backbone"}


def test_cli_lists_models():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    result = subprocess.run(
        [sys.executable, "-m", "jaxtl.models", "--list"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = result.stdout.split()
    assert "resnet18" in lines and "resnet50" in lines
    assert lines == list_models()
