"""timm (and torchvision) state-dict names and layouts -> jaxtl variables.

A key `a.b.c.leaf` splits into module parts and a leaf. Module parts become the jaxtl path by
the architecture's naming (`TimmCheckpoint.naming`, stated by its model family in jaxtl.models):
  "nested"  a numeric part (an nn.Sequential index) joins the part before it with "_", every
            other part starts a nested module: `blocks.1.0.se.conv_reduce` -> `blocks_1_0/se/conv_reduce`.
  "flat"    every part joins with "_": `features.denseblock1.denselayer1.norm1` ->
            `features_denseblock1_denselayer1_norm1` (DenseNet, VGG).
  "resnet"  "nested", with torchvision's `downsample.0`/`downsample.1` named `downsample_conv`/`downsample_bn`.
The architecture's classifier module (`fc`, `head.fc`, `classifier`) becomes `head/fc`.

Leaves: conv `weight` (O, I, kh, kw) -> `kernel` (kh, kw, I, O); Linear `weight` (O, I) and a
1x1-conv classifier (O, I, 1, 1) -> Dense `kernel` (I, O); norm `weight` -> `scale`; `bias` ->
`bias`; a tensor of the model itself (ViT's `cls_token`, `pos_embed`) and a LayerScale `gamma` keep
their names; BatchNorm `running_mean`/`running_var` -> batch_stats `mean`/`var`; NF `gain`
(O, 1, 1, 1) -> `gain` (O,); `num_batches_tracked` is dropped.

The result must match the jaxtl model's variables exactly: any name missing, left over or with
another shape fails with the three lists.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from flax import traverse_util

from jaxtl import models
from jaxtl.conversion.errors import ConversionError
from jaxtl.models import TimmCheckpoint

DROPPED_LEAVES = ("num_batches_tracked",)
# torchvision checkpoints saved before 0.3 name DenseNet layers `norm.1`, `conv.2`, ...;
# torchvision's own loader renames them to `norm1`, `conv2` (its `_load_state_dict` regex).
_LEGACY_DENSENET = {f"{kind}.{i}": f"{kind}{i}" for kind in ("norm", "relu", "conv") for i in (1, 2)}


def timm_checkpoint(arch: str) -> TimmCheckpoint:
    """How timm names and feeds `arch` (from its model family); a ConversionError if timm has
    no such architecture."""
    try:
        checkpoint = models.timm_checkpoint(arch)
    except ValueError:
        checkpoint = None
    if checkpoint is None:
        raise ConversionError(f"--arch {arch!r} has no timm converter; convertible architectures: "
                              f"{', '.join(sorted(convertible_architectures()))}")
    return checkpoint


def convertible_architectures() -> list[str]:
    """The zoo's architectures that have a timm counterpart, family by family."""
    return [arch for members in models.families().values() for arch in members
            if models.timm_checkpoint(arch) is not None]


def module_path(arch: str, parts: list[str]) -> str:
    naming = timm_checkpoint(arch).naming
    if naming == "flat":
        return "_".join(parts)
    joined: list[str] = []
    for part in parts:
        if part.isdigit() and joined:
            joined[-1] = f"{joined[-1]}_{part}"
        else:
            joined.append(part)
    if naming == "resnet":
        joined = [{"downsample_0": "downsample_conv", "downsample_1": "downsample_bn"}.get(p, p)
                  for p in joined]
    return "/".join(joined)


def jaxtl_leaf(key: str, value: np.ndarray, arch: str) -> tuple[str, str, np.ndarray] | None:
    """(collection, path, array) for one timm tensor; None for a tensor that is dropped."""
    *modules, leaf = key.split(".")
    if leaf in DROPPED_LEAVES:
        return None
    classifier = timm_checkpoint(arch).classifier
    if ".".join(modules) == classifier:
        if leaf == "weight":
            if value.ndim == 4 and value.shape[2:] == (1, 1):
                value = value[:, :, 0, 0]
            if value.ndim != 2:
                raise ConversionError(f"{key} has shape {value.shape}; expected a classifier "
                                      f"weight (classes, features)")
            return "params", "head/fc/kernel", value.T
        return "params", f"head/fc/{leaf}", value
    path = "/".join(["backbone", *([module_path(arch, modules)] if modules else [])])
    if leaf == "weight":
        if value.ndim == 4:
            return "params", f"{path}/kernel", value.transpose(2, 3, 1, 0)
        if value.ndim == 2:
            return "params", f"{path}/kernel", value.T
        return "params", f"{path}/scale", value
    if leaf == "gain":
        return "params", f"{path}/gain", value.reshape(-1)
    if leaf == "running_mean":
        return "batch_stats", f"{path}/mean", value
    if leaf == "running_var":
        return "batch_stats", f"{path}/var", value
    return "params", f"{path}/{leaf}", value


def normalise_torchvision_names(state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """torchvision's pre-0.3 DenseNet names (`denselayer1.norm.1`) in today's form (`norm1`)."""
    out = {}
    for key, value in state.items():
        for old, new in _LEGACY_DENSENET.items():
            key = key.replace(f".{old}.", f".{new}.")
        out[key] = value
    return out


def convert_state_dict(arch: str, state: Mapping[str, np.ndarray],
                       expected: Mapping[str, object],
                       ignore: tuple[str, ...] = ()) -> dict[str, dict]:
    """{'params': ..., 'batch_stats': ...} for `arch` from a timm-named state dict.

    `expected` is the jaxtl model's variables (arrays or ShapeDtypeStructs) with the classifier
    sized as in `state`. Keys listed in `ignore` (e.g. torchxrayvision's `op_threshs`) are skipped.
    """
    timm_checkpoint(arch)
    state = normalise_torchvision_names(state)
    wanted = {f"{collection}/{name}": leaf for collection, tree in expected.items()
              for name, leaf in traverse_util.flatten_dict(tree, sep="/").items()}
    found: dict[str, np.ndarray] = {}
    source_of: dict[str, str] = {}
    unexpected, misshaped = [], []
    for key, value in state.items():
        if key in ignore:
            continue
        mapped = jaxtl_leaf(key, np.asarray(value), arch)
        if mapped is None:
            continue
        collection, path, array = mapped
        name = f"{collection}/{path}"
        if name not in wanted:
            unexpected.append(f"{key} (-> {name})")
        elif tuple(array.shape) != tuple(wanted[name].shape):
            source_of[name] = key
            misshaped.append(f"{key} {tuple(value.shape)} -> {name} {tuple(array.shape)}, "
                             f"model has {tuple(wanted[name].shape)}")
        elif name in found:
            unexpected.append(f"{key} (-> {name}, already given by {source_of[name]})")
        else:
            found[name] = np.ascontiguousarray(array, dtype=np.float32)
            source_of[name] = key
    missing = [name for name in wanted if name not in source_of]
    if missing or unexpected or misshaped:
        raise ConversionError(f"the weights do not fit {arch}: " + mismatch_text(
            missing=missing, unexpected=unexpected, misshaped=misshaped))
    variables: dict[str, dict] = {}
    for name, array in found.items():
        collection, path = name.split("/", 1)
        variables.setdefault(collection, {})[path] = array
    return {collection: traverse_util.unflatten_dict(flat, sep="/")
            for collection, flat in variables.items()}


def mismatch_text(**lists: list[str]) -> str:
    """'missing (3): a, b, c; unexpected (1): d' with at most 8 names per list."""
    parts = []
    for label, names in lists.items():
        if names:
            shown = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")
            parts.append(f"{label.replace('misshaped', 'mis-shaped')} ({len(names)}): {shown}")
    return "; ".join(parts)
