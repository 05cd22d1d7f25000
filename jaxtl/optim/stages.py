"""The stages of each backbone, from the input up, as regexes over its variable paths.

Fine-tuning strategies (freeze the first K stages, gradual unfreezing, per-stage learning rates)
act on whole stages. A stage is a name and a regex matched against the path of a variable
(or module) inside the backbone, joined with '/' and ending in '/', e.g.
`layer1_0/conv1/kernel/` or `layer1_0/bn1/`. Every backbone variable belongs to exactly one
stage (tests/optim/test_stages.py checks this for every registered architecture). The classifier
head is not a stage: it is always trained.

Stage boundaries follow the architecture's resolution stages, as timm's `group_matcher` does;
`python -m jaxtl.optim.stages ARCH` prints them.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import sys
from collections.abc import Iterable

from jaxtl.errors import ConfigError
from jaxtl.models.vgg import VGG16_CFG


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    pattern: str  # regex, matched with re.match against 'path/inside/backbone/'

    def matches(self, path: str) -> bool:
        return re.match(self.pattern, path) is not None


def _alternatives(names: Iterable[str]) -> str:
    return "(" + "|".join(re.escape(n) for n in names) + ")/"


def _resnet() -> tuple[Stage, ...]:
    return (Stage("stem", _alternatives(["conv1", "bn1"])),
            *(Stage(f"layer{i}", rf"layer{i}_\d+/") for i in range(1, 5)))


def _resnetv2() -> tuple[Stage, ...]:
    # the final pre-activation norm sits on top of the last stage
    return (Stage("stem", "stem/"), Stage("stages_0", "stages_0/"), Stage("stages_1", "stages_1/"),
            Stage("stages_2", "stages_2/"), Stage("stages_3", "(stages_3|norm)/"))


def _nfnet() -> tuple[Stage, ...]:
    return (Stage("stem", "stem/"), *(Stage(f"stages_{i}", rf"stages_{i}_\d+/") for i in range(4)))


def _densenet() -> tuple[Stage, ...]:
    # each dense block with the transition that follows it; norm5 closes the last block
    return (Stage("stem", "features_(conv0|norm0)/"),
            *(Stage(f"denseblock{i}", rf"features_(denseblock{i}_|transition{i}_)")
              for i in range(1, 4)),
            Stage("denseblock4", "features_(denseblock4_|norm5/)"))


def _efficientnet() -> tuple[Stage, ...]:
    return (Stage("stem", _alternatives(["conv_stem", "bn1"])),
            *(Stage(f"blocks_{i}", rf"blocks_{i}_\d+/") for i in range(7)),
            Stage("conv_head", _alternatives(["conv_head", "bn2"])))


def _inception() -> tuple[Stage, ...]:
    return (Stage("stem", r"Conv2d_\w+/"), Stage("mixed_5", r"Mixed_5\w/"),
            Stage("mixed_6", r"Mixed_6\w/"), Stage("mixed_7", r"Mixed_7\w/"))


def _vgg(batch_norm: bool) -> tuple[Stage, ...]:
    """One stage per max-pool block (features_<index> as in timm), then fc6/fc7."""
    stages, block, index = [], [], 0
    for entry in VGG16_CFG:
        if entry == "M":
            stages.append(Stage(f"block{len(stages) + 1}", rf"features_({'|'.join(block)})/"))
            block, index = [], index + 1
            continue
        block += [str(index), str(index + 1)] if batch_norm else [str(index)]
        index += 3 if batch_norm else 2  # conv (+ bn) + relu
    # fc6, its dropout (an unnamed Linen Dropout) and fc7
    return (*stages, Stage("pre_logits", "(pre_logits_fc[12]|Dropout_0)/"))


def _small_cnn() -> tuple[Stage, ...]:
    return tuple(Stage(f"block{i}", rf"block{i}_") for i in range(1, 5))


_FAMILIES = {
    "resnet": lambda arch: _resnet(),
    "resnetv2": lambda arch: _resnetv2(),
    "nfnet": lambda arch: _nfnet(),
    "densenet": lambda arch: _densenet(),
    "efficientnet": lambda arch: _efficientnet(),
    "inception": lambda arch: _inception(),
    "vgg": lambda arch: _vgg(batch_norm=arch.endswith("_bn")),
    "small_cnn": lambda arch: _small_cnn(),
}


def _family_of(arch: str) -> str | None:
    for family in _FAMILIES:
        if arch in importlib.import_module(f"jaxtl.models.{family}").BACKBONES:
            return family
    return None


def stages_of(arch: str) -> tuple[Stage, ...]:
    """The backbone stages of `arch`, from the input up."""
    family = _family_of(arch)
    if family is None:
        raise ConfigError(f"architecture {arch!r} has no stages defined for fine-tuning "
                          f"strategies; add its family to jaxtl/optim/stages.py")
    return _FAMILIES[family](arch)


def stage_of(stages: tuple[Stage, ...], path: str) -> str:
    """The name of the one stage that `path` (inside the backbone, '/'-joined) belongs to."""
    path = path if path.endswith("/") else path + "/"
    names = [stage.name for stage in stages if stage.matches(path)]
    if len(names) != 1:
        raise ValueError(f"backbone variable {path!r} belongs to {len(names)} stages "
                         f"({', '.join(names) or 'none'}); fix jaxtl/optim/stages.py")
    return names[0]


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(name + ": " + ", ".join(s.name for s in stages_of(name)))
