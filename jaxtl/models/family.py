"""What a model family module states about each of its architectures.

Every family module (jaxtl/models/<family>.py) exports `ARCHITECTURES: dict[str, Architecture]`,
which `jaxtl.models.registry` collects. An `Architecture` is:
  * `factory(dtype=...)`: the backbone, a Linen module whose `__call__(x, train)` gives
    `(pooled features (N, C) float32, named features)` and whose `min_input_size` is the
    smallest square input side (pixels) it accepts. The named features (jaxtl/models/taps.py)
    are recorded with `taps.tap` in its forward pass: `stem`, each stage's output under the
    stage's name (a map, up to the Grad-CAM stage), `pre_logits` (the pooled features);
  * `stages`: the backbone cut into fine-tuning stages, from the input up (`Stage`);
  * `timm`: how timm (or torchvision) names and feeds a checkpoint of it (`TimmCheckpoint`), or
    None for an architecture without a timm counterpart (jaxtl's own `small_cnn`);
  * `gradcam_stage`: the stage whose output Grad-CAM explains by default (jaxtl.explain), None
    for the last stage. Name another only when the last stage is no longer a feature map on
    the input's grid (VGG's fc6/fc7 `pre_logits`: a 7x7 valid convolution, 1x1 at 224 px);
  * `activated_tap`: True where the Grad-CAM stage's feature is taken before the stage's
    activation (DenseNet's norm5 before its ReLU, EfficientNet's bn2 before its SiLU): the
    backbone then also taps the output after the activation as `taps.activated(stage)`, which
    Grad-CAM explains by default (`models.gradcam_feature`), as pytorch-grad-cam does on timm's
    BatchNormAct2d modules. False where the stage's output already is after its activation
    (ResNet's last block ends in a ReLU).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any, Literal

import flax.linen as nn

BackboneFactory = Callable[..., nn.Module]

# timm's IMAGENET_DEFAULT_MEAN/STD and IMAGENET_INCEPTION_MEAN/STD, on the 0..1 scale.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)


@dataclasses.dataclass(frozen=True)
class Stage:
    """A part of the backbone that fine-tuning strategies freeze, unfreeze or scale as a whole.

    `pattern` is matched (re.match) against the path of a variable or module inside the
    backbone, joined with '/' and ending in '/', e.g. `layer1_0/conv1/kernel/` or `layer1_0/bn1/`.
    An architecture's stages follow its resolution stages, as timm's `group_matcher` does, and
    every backbone variable belongs to exactly one of them (tests/models/test_zoo.py).
    """

    name: str
    pattern: str

    def matches(self, path: str) -> bool:
        return re.match(self.pattern, path) is not None


def any_of(*modules: str) -> str:
    """A stage pattern for the named top-level modules: '(conv1|bn1)/'."""
    return "(" + "|".join(re.escape(m) for m in modules) + ")/"


@dataclasses.dataclass(frozen=True)
class TimmCheckpoint:
    """The timm counterpart of an architecture, as the weight converters need it.

    `resolution`, `mean` and `std` are the input of timm 1.0.31's default pretrained weights for
    the architecture (`timm.create_model(arch).pretrained_cfg`: `input_size`, `mean`, `std`; its
    tag is `tag`); they become a converted checkpoint's metadata unless the converter is given
    others. `jaxtl.convert_weights.make_golden` checks these facts against timm.
    """

    # How a timm state-dict key becomes a jaxtl variable path (jaxtl.conversion.timm_layout).
    naming: Literal["nested", "flat", "resnet"]
    first_conv: str  # timm module of the first convolution (its input channels)
    classifier: str  # timm module of the classifier, jaxtl's `head/fc`
    resolution: int
    tag: str
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    # timm's model name where jaxtl's differs (a layout timm builds from arguments), and the
    # arguments of `timm.create_model` that give timm's model jaxtl's layout and behaviour.
    timm_name: str = ""
    timm_kwargs: tuple[tuple[str, Any], ...] = ()
    # False for a size too costly for the golden parity files: its converter runs the same
    # code as a checked architecture of its family that differs in width and depth only.
    golden: bool = True

    def model_name(self, arch: str) -> str:
        """The name `timm.create_model` knows architecture `arch` by."""
        return self.timm_name or arch


@dataclasses.dataclass(frozen=True)
class Architecture:
    factory: BackboneFactory
    stages: tuple[Stage, ...]
    timm: TimmCheckpoint | None  # None: no timm counterpart
    gradcam_stage: str | None = None  # None: the last of `stages`
    activated_tap: bool = False  # the Grad-CAM stage is tapped after its activation too
