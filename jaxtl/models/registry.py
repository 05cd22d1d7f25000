"""The zoo's architectures, collected from the family modules, and the lookups on them.

FAMILY_MODULES below is the one list of model families: each names a module
jaxtl/models/<family>.py that exports `ARCHITECTURES: dict[str, Architecture]` (see
jaxtl/models/family.py). Adding a family is writing that module and adding its name here; its
architectures then have a model (`create_model`), fine-tuning stages (`stages_of`) and, where
timm has them, the facts the weight converters need (`timm_checkpoint`). The order of the tuple
is the order of `families()` (and of the converters' parity table).

`register(name, architecture, family)` adds an architecture at run time (tests use it).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from typing import Any

import jax.numpy as jnp

from jaxtl.core.errors import ConfigError
from jaxtl.models.classifier import Classifier
from jaxtl.models.family import Architecture, Stage, TimmCheckpoint
from jaxtl.models.heads import make_head
from jaxtl.models.layers import Dtype
from jaxtl.models.taps import PRE_LOGITS, STEM, activated

FAMILY_MODULES = ("resnet", "vgg", "densenet", "small_cnn", "efficientnet", "inception", "nfnet",
                  "resnetv2", "vit", "convnext")

DTYPES: dict[str, Dtype] = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class _Registered:
    family: str
    architecture: Architecture


_REGISTERED: dict[str, _Registered] = {}


def register(name: str, architecture: Architecture, family: str) -> None:
    """Makes `architecture` available as `name` (to `create_model`, `stages_of`, ...)."""
    if name in _REGISTERED:
        raise ValueError(f"architecture {name!r} is already registered")
    if not isinstance(getattr(architecture.factory(dtype=jnp.float32), "min_input_size", None),
                      int):
        raise ValueError(f"backbone {name!r} must declare `min_input_size`, the smallest square "
                         f"input side in pixels it accepts (1 if any size works)")
    if not architecture.stages:
        raise ValueError(f"architecture {name!r} needs at least one fine-tuning stage")
    if architecture.gradcam_stage not in (None, *(s.name for s in architecture.stages)):
        raise ValueError(f"architecture {name!r}: gradcam_stage {architecture.gradcam_stage!r} "
                         f"is not one of its stages")
    _REGISTERED[name] = _Registered(family, architecture)


def list_models() -> list[str]:
    return sorted(_REGISTERED)


def families() -> dict[str, tuple[str, ...]]:
    """Family name -> its architectures, in registration order."""
    grouped: dict[str, tuple[str, ...]] = {}
    for name, registered in _REGISTERED.items():
        grouped[registered.family] = (*grouped.get(registered.family, ()), name)
    return grouped


def _architecture(name: str) -> Architecture:
    if name not in _REGISTERED:
        raise ValueError(f"unknown architecture {name!r}; known architectures: "
                         f"{', '.join(list_models())}")
    return _REGISTERED[name].architecture


def min_input_size(name: str) -> int:
    """Smallest square input side (pixels) that architecture `name` accepts."""
    return _architecture(name).factory(dtype=jnp.float32).min_input_size


def stages_of(name: str) -> tuple[Stage, ...]:
    """The backbone stages of `name`, from the input up."""
    if name not in _REGISTERED:
        raise ConfigError(f"architecture {name!r} has no stages defined for fine-tuning "
                          f"strategies: it is not registered; known architectures: "
                          f"{', '.join(list_models())}")
    return _REGISTERED[name].architecture.stages


def gradcam_stage(name: str) -> Stage:
    """The stage whose output Grad-CAM explains by default: the architecture's
    `gradcam_stage`, else its last stage (see jaxtl/models/family.py)."""
    stages = stages_of(name)
    wanted = _architecture(name).gradcam_stage or stages[-1].name
    return next(stage for stage in stages if stage.name == wanted)


def gradcam_feature(name: str) -> str:
    """The named feature Grad-CAM explains by default: the Grad-CAM stage's output after its
    activation, `taps.activated(stage)` where the stage's own feature is taken before it
    (`Architecture.activated_tap`), else the stage's feature."""
    stage = gradcam_stage(name).name
    return activated(stage) if _architecture(name).activated_tap else stage


def feature_maps(name: str) -> tuple[str, ...]:
    """The named features of `name` that are maps (N, h, w, C) on the input's grid, from the
    input up: STEM, then its stages up to the Grad-CAM stage, then `gradcam_feature`
    (jaxtl/models/taps.py)."""
    stages = [stage.name for stage in stages_of(name)]
    maps = stages[:stages.index(gradcam_stage(name).name) + 1]
    return tuple(dict.fromkeys([STEM, *maps, gradcam_feature(name)]))


def feature_names(name: str) -> tuple[str, ...]:
    """Every named feature the backbone of `name` returns: its feature maps, PRE_LOGITS (the
    pooled features) and the name of each stage after the Grad-CAM stage (VGG's pre_logits)."""
    return tuple(dict.fromkeys([*feature_maps(name), *(s.name for s in stages_of(name)),
                                PRE_LOGITS]))


def timm_checkpoint(name: str) -> TimmCheckpoint | None:
    """How timm names and feeds a checkpoint of `name`; None if timm has no such architecture."""
    return _architecture(name).timm


def resolve_dtype(dtype: str | Dtype) -> Dtype:
    """Maps "float32"/"bfloat16" (or those jnp dtypes) to the jnp dtype."""
    try:
        key = dtype if isinstance(dtype, str) else jnp.dtype(dtype).name
    except TypeError:
        key = repr(dtype)
    if key not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; known dtypes: {', '.join(DTYPES)}")
    return DTYPES[key]


def has_drop_path(name: str) -> bool:
    """Whether architecture `name` has stochastic depth (its factory takes `drop_path`)."""
    return "drop_path" in inspect.signature(_architecture(name).factory).parameters


def has_remat(name: str) -> bool:
    """Whether architecture `name` can rematerialise its blocks (its factory takes `remat`)."""
    return "remat" in inspect.signature(_architecture(name).factory).parameters


def create_backbone(name: str, *, dtype: str | Dtype = "float32") -> Any:
    """The backbone `name` alone (pooled features), computing in `dtype`: what a `Classifier`
    and a segmentation model (jaxtl/models/unet.py) put their heads on."""
    return _architecture(name).factory(dtype=resolve_dtype(dtype))


def create_model(
    name: str,
    *,
    num_outputs: int,
    head: str = "linear",
    dropout: float = 0.0,
    dtype: str | Dtype = "float32",
    drop_path: float = 0.0,
    head_init_std: float = 0.0,
    remat: bool = False,
) -> Classifier:
    """Backbone `name` (see `list_models()`) computing in `dtype`, with classifier head `head`
    (see HEADS), which computes in float32, and stochastic depth at rate `drop_path` (families
    whose factory takes `drop_path`; timm's `drop_path_rate`); `head_init_std`: the head's
    initial kernel scale (`heads.Head.init_std`); `remat`: each block rematerialised in the
    backward pass (families whose factory takes `remat`)."""
    architecture = _architecture(name)
    if num_outputs < 1:
        raise ValueError(f"num_outputs must be positive, got {num_outputs}")
    compute_dtype = resolve_dtype(dtype)
    extra = {}
    for key, value, has, lacks, off in (
            ("drop_path", drop_path, has_drop_path, "has no stochastic depth", "0"),
            ("remat", remat, has_remat, "cannot rematerialise its blocks", "False")):
        if not value:
            continue
        if not has(name):
            raise ConfigError(f"model.{key}: {name} {lacks}; set it to {off} or pick a family "
                              f"that can: "
                              f"{', '.join(f for f, m in families().items() if has(m[0]))}")
        extra[key] = value
    return Classifier(
        backbone=architecture.factory(dtype=compute_dtype, **extra),
        head=make_head(head, num_outputs=num_outputs, dropout=dropout,
                       init_std=head_init_std),
    )


def _register_families() -> None:
    for family in FAMILY_MODULES:
        module = importlib.import_module(f"jaxtl.models.{family}")
        for name, architecture in module.ARCHITECTURES.items():
            register(name, architecture, family)


_register_families()
