"""jaxtl variables -> a timm-named state dict: `timm_layout` in reverse (`python -m jaxtl.export`).

Each jaxtl leaf is named back by the architecture's naming (`TimmCheckpoint.naming`, see
`timm_layout`): under "nested" and "resnet" a module part `name_1_0` is `name.1.0` (the
trailing numbers were nn.Sequential indices; Inception's `branch3x3dbl_1` and its kind are
names) and ResNet's `downsample_conv`/`downsample_bn` are `downsample.0`/`.1`; under "flat"
(DenseNet, VGG) every `_` was a `.`, except inside the multi-word names timm gives those
models' modules (`FLAT_WORDS`). `head/fc` is the architecture's classifier.

Leaves: `kernel` (kh, kw, I, O) -> `weight` (O, I, kh, kw); Dense `kernel` (I, O) -> `weight`
(O, I), or (O, I, 1, 1) for the classifier of a family whose timm classifier is a 1x1
convolution (`CONV_CLASSIFIER_FAMILIES`); `scale` -> `weight`; NF `gain` (O,) -> (O, 1, 1, 1);
batch_stats `mean`/`var` -> `running_mean`/`running_var` (with a `num_batches_tracked` of 0,
which torch's BatchNorm keeps in its state dict); other names as they are.

Every name is checked by mapping it forward again with `timm_layout.jaxtl_leaf`: a name this
module cannot invert fails instead of being written wrong.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
from flax import traverse_util

from jaxtl import models
from jaxtl.conversion.errors import ConversionError
from jaxtl.conversion.timm_layout import jaxtl_leaf, timm_checkpoint
from jaxtl.models import HEAD

BACKBONE = "backbone"
# timm module names of the "flat" families that hold an underscore themselves (VGG's head).
FLAT_WORDS = ("pre_logits",)
CONV_CLASSIFIER_FAMILIES = ("resnetv2",)  # BiT: timm's head.fc is a 1x1 nn.Conv2d
_NUMBERED_NAME = re.compile(r"^branch\w*_\d+$")  # Inception's branch5x5_1, branch3x3dbl_2
_RESNET_PARTS = {"downsample_conv": "downsample.0", "downsample_bn": "downsample.1"}


def _nested_part(part: str) -> str:
    """`blocks_1_0` -> `blocks.1.0`: the trailing numeric words were Sequential indices."""
    if _NUMBERED_NAME.match(part):
        return part
    words = part.split("_")
    index = len(words)
    while index > 1 and words[index - 1].isdigit():
        index -= 1
    return ".".join(["_".join(words[:index]), *words[index:]])


def _flat_part(part: str) -> str:
    for word in FLAT_WORDS:
        part = part.replace(word, word.replace("_", "\0"))
    return part.replace("_", ".").replace("\0", "_")


def _members(families: tuple[str, ...]) -> set[str]:
    return {arch for family in families for arch in models.families().get(family, ())}


def timm_module(arch: str, path: str) -> str:
    """The timm module name of a jaxtl module path inside the backbone ('a/b_1')."""
    naming = timm_checkpoint(arch).naming
    if naming == "flat":
        return _flat_part(path)
    parts = path.split("/")
    if naming == "resnet":
        parts = [_RESNET_PARTS.get(part, part) for part in parts]
    return ".".join(_nested_part(part) for part in parts)


def timm_entries(arch: str, collection: str, path: str,
                 value: np.ndarray) -> dict[str, np.ndarray]:
    """The timm state-dict entries of one jaxtl leaf (`path` '/'-joined from the model root)."""
    value = np.asarray(value)
    *modules, leaf = path.split("/")
    if modules == [HEAD, "fc"]:
        classifier = timm_checkpoint(arch).classifier
        if leaf != "kernel":
            return {f"{classifier}.{leaf}": value}
        conv = arch in _members(CONV_CLASSIFIER_FAMILIES)
        return {f"{classifier}.weight": value.T[:, :, None, None] if conv else value.T}
    if not modules or modules[0] != BACKBONE:
        raise ConversionError(f"{collection}/{path} is neither in the backbone nor the "
                              f"classifier head/fc: timm's {arch} has no such tensor")
    dot = f"{timm_module(arch, '/'.join(modules[1:]))}." if len(modules) > 1 else ""
    if collection == "batch_stats":
        names = {"mean": "running_mean", "var": "running_var"}
        if leaf not in names:
            raise ConversionError(f"batch_stats/{path}: no timm counterpart")
        entries = {f"{dot}{names[leaf]}": value}
        if leaf == "mean":
            entries[f"{dot}num_batches_tracked"] = np.zeros((), np.int64)
        return entries
    if leaf == "kernel":
        return {f"{dot}weight": value.transpose(3, 2, 0, 1) if value.ndim == 4 else value.T}
    if leaf == "scale":
        return {f"{dot}weight": value}
    if leaf == "gain":
        return {f"{dot}gain": value.reshape(-1, 1, 1, 1)}
    return {f"{dot}{leaf}": value}


def timm_state_dict(arch: str, variables: Mapping[str, object]) -> dict[str, np.ndarray]:
    """A timm-named state dict (float32; torch layouts) of `arch`'s jaxtl `variables`, each name
    checked to convert back to the leaf it came from."""
    state: dict[str, np.ndarray] = {}
    for collection in ("params", "batch_stats"):
        flat = traverse_util.flatten_dict(dict(variables.get(collection, {})), sep="/")
        for path, value in flat.items():
            for key, array in timm_entries(arch, collection, path, np.asarray(value)).items():
                back = jaxtl_leaf(key, array, arch)
                if back is not None and (back[0], back[1]) != (collection, path):
                    raise ConversionError(f"{collection}/{path} would be written as {key}, "
                                          f"which converts back to {back[0]}/{back[1]}")
                state[key] = np.ascontiguousarray(
                    array if array.dtype == np.int64 else array.astype(np.float32))
    return state
