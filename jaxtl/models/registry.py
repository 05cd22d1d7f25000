"""Name -> backbone registry and `create_model`.

New architectures are added with `register_backbone(name, factory)`; a factory takes
`dtype` and returns a Linen module whose `__call__(x, train)` gives pooled features and
whose `min_input_size` attribute is the smallest square input side (pixels) it accepts.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import flax.linen as nn
import jax.numpy as jnp

from jaxtl.models.classifier import Classifier
from jaxtl.models.heads import make_head
from jaxtl.models.layers import Dtype

BackboneFactory = Callable[..., nn.Module]

DTYPES: dict[str, Dtype] = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}

_BACKBONES: dict[str, BackboneFactory] = {}


def register_backbone(name: str, factory: BackboneFactory) -> None:
    """Makes `factory(dtype=...)` available to `create_model` as `name`."""
    if name in _BACKBONES:
        raise ValueError(f"backbone {name!r} is already registered")
    if not isinstance(getattr(factory(dtype=jnp.float32), "min_input_size", None), int):
        raise ValueError(f"backbone {name!r} must declare `min_input_size`, the smallest square "
                         f"input side in pixels it accepts (1 if any size works)")
    _BACKBONES[name] = factory


def list_models() -> list[str]:
    return sorted(_BACKBONES)


def min_input_size(name: str) -> int:
    """Smallest square input side (pixels) that architecture `name` accepts."""
    _check_known(name)
    return _BACKBONES[name](dtype=jnp.float32).min_input_size


def _check_known(name: str) -> None:
    if name not in _BACKBONES:
        raise ValueError(f"unknown architecture {name!r}; known architectures: {', '.join(list_models())}")


def resolve_dtype(dtype: str | Dtype) -> Dtype:
    """Maps "float32"/"bfloat16" (or those jnp dtypes) to the jnp dtype."""
    try:
        key = dtype if isinstance(dtype, str) else jnp.dtype(dtype).name
    except TypeError:
        key = repr(dtype)
    if key not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; known dtypes: {', '.join(DTYPES)}")
    return DTYPES[key]


def create_model(
    name: str,
    *,
    num_outputs: int,
    head: str = "linear",
    dropout: float = 0.0,
    dtype: str | Dtype = "float32",
) -> Classifier:
    """Backbone `name` (see `list_models()`) with classifier head `head` (see HEADS)."""
    _check_known(name)
    if num_outputs < 1:
        raise ValueError(f"num_outputs must be positive, got {num_outputs}")
    compute_dtype = resolve_dtype(dtype)
    return Classifier(
        backbone=_BACKBONES[name](dtype=compute_dtype),
        head=make_head(head, num_outputs=num_outputs, dropout=dropout, dtype=compute_dtype),
    )


# Each family module (jaxtl/models/<family>.py) exposes BACKBONES: {name: factory}.
_FAMILIES = ("resnet", "vgg", "densenet", "small_cnn", "efficientnet", "inception", "nfnet", "resnetv2")

for _family in _FAMILIES:
    for _name, _factory in importlib.import_module(f"jaxtl.models.{_family}").BACKBONES.items():
        register_backbone(_name, _factory)
