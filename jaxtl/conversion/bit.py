"""Original BiT `.npz` (big_transfer release) -> jaxtl pretrained checkpoint.

The conversion of `python -m jaxtl.convert_weights.bit` (tools/convert_weights/bit.py,
its command line).

Reads the names of Google's BiT release, as timm's `resnetv2._load_weights` does:
`resnet/root_block/standardized_conv2d/kernel`, `resnet/block{b}/unit{u:02d}/{a,b,c}/
standardized_conv2d/kernel`, `.../a/proj/standardized_conv2d/kernel`,
`.../{a,b,c}/group_norm/{gamma,beta}`, `resnet/group_norm/{gamma,beta}` and
`resnet/head/conv2d/{kernel,bias}`. Kernels are TensorFlow HWIO, jaxtl's layout, so they are
copied as they are; the 1x1 head conv becomes the Dense head. ResNet-50x1 (units 3, 4, 6, 3;
64-channel stem) maps onto `resnetv2_50x1_bit`; other BiT sizes are not in the zoo.
BiT's input normalisation is (x - 0.5) / 0.5; the upstream models were trained at 224 px
(BiT-HyperRule fine-tunes at 128..480 depending on the dataset).
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Mapping

import numpy as np
from flax import traverse_util

from jaxtl import __version__
from jaxtl.conversion.convert import expected_variables, file_sha256
from jaxtl.conversion.errors import ConversionError
from jaxtl.conversion.reading import read_weights
from jaxtl.conversion.timm_layout import mismatch_text
from jaxtl.workdir.pretrained import PretrainedInfo, save_pretrained

ARCH = "resnetv2_50x1_bit"
UNITS = (3, 4, 6, 3)
RESOLUTION = 224
INPUT_MEAN = INPUT_STD = 0.5  # BiT's input normalisation: (x - 0.5) / 0.5, every channel
_UNIT = re.compile(r"^block(\d+)/unit(\d+)/(a|b|c)/(proj/)?(standardized_conv2d|group_norm)/(\w+)$")



def jaxtl_name(key: str) -> str | None:
    """'params/...' path for one BiT npz key (without the `resnet/` prefix); None if unknown."""
    fixed = {
        "root_block/standardized_conv2d/kernel": "backbone/stem/conv/kernel",
        "group_norm/gamma": "backbone/norm/scale",
        "group_norm/beta": "backbone/norm/bias",
        "head/conv2d/kernel": "head/fc/kernel",
        "head/conv2d/bias": "head/fc/bias",
    }
    if key in fixed:
        return fixed[key]
    match = _UNIT.match(key)
    if not match:
        return None
    block, unit, part, proj, kind, leaf = match.groups()
    prefix = f"backbone/stages_{int(block) - 1}/blocks_{int(unit) - 1}"
    index = "abc".index(part) + 1
    if proj:
        return f"{prefix}/downsample/conv/kernel" if kind == "standardized_conv2d" and part == "a" \
            and leaf == "kernel" else None
    if kind == "standardized_conv2d":
        return f"{prefix}/conv{index}/kernel" if leaf == "kernel" else None
    return {"gamma": f"{prefix}/norm{index}/scale", "beta": f"{prefix}/norm{index}/bias"}.get(leaf)


def convert_bit(weights: Mapping[str, np.ndarray]) -> tuple[int, dict]:
    """(num_classes, variables) from BiT npz arrays; fails listing any mismatch."""
    stripped = {key[len("resnet/"):] if key.startswith("resnet/") else key: value
                for key, value in weights.items()}
    units = tuple(len({m[2] for k in stripped if (m := _UNIT.match(k)) and m[1] == str(b)})
                  for b in range(1, 5))
    if units != UNITS:
        raise ConversionError(f"the .npz has {units} units per block; only BiT ResNet-50 "
                              f"{UNITS} ({ARCH}) is in the jaxtl zoo")
    head = stripped.get("head/conv2d/kernel")
    if head is None:
        raise ConversionError("the .npz has no resnet/head/conv2d/kernel: not a BiT classifier")
    num_classes = int(head.shape[-1])
    expected = expected_variables(ARCH, num_classes, int(
        stripped["root_block/standardized_conv2d/kernel"].shape[2]))["params"]
    wanted = traverse_util.flatten_dict(expected, sep="/")
    found: dict[str, np.ndarray] = {}
    unexpected, misshaped = [], []
    for key, value in stripped.items():
        name = jaxtl_name(key)
        if name is None or name not in wanted:
            unexpected.append(key)
            continue
        if name == "head/fc/kernel":
            value = value.reshape(value.shape[-2], value.shape[-1])
        elif value.ndim != 4 and value.size == int(np.prod(wanted[name].shape)):
            value = value.reshape(wanted[name].shape)  # norms stored as (C,) or (1, 1, 1, C)
        if tuple(value.shape) != tuple(wanted[name].shape):
            misshaped.append(f"{key} {value.shape} -> {name}, model has {wanted[name].shape}")
            continue
        found[name] = np.ascontiguousarray(value, np.float32)
    missing = [name for name in wanted if name not in found]
    if missing or unexpected or misshaped:
        raise ConversionError(f"the .npz does not fit {ARCH}: " + mismatch_text(
            missing=missing, unexpected=unexpected, misshaped=misshaped))
    return num_classes, {"params": traverse_util.unflatten_dict(found, sep="/")}


def convert(weights: str, out: str) -> pathlib.Path:
    path = pathlib.Path(weights).expanduser()
    if path.suffix.lower() != ".npz":
        raise ConversionError(f"--weights {path}: expected a BiT .npz; timm's resnetv2_50x1_bit "
                              f"checkpoints convert with jaxtl.convert_weights.timm")
    num_classes, variables = convert_bit(read_weights(path))
    in_channels = int(variables["params"]["backbone"]["stem"]["conv"]["kernel"].shape[2])
    info = PretrainedInfo(
        arch=ARCH, num_classes=num_classes, in_channels=in_channels, resolution=RESOLUTION,
        mean=(INPUT_MEAN,) * in_channels, std=(INPUT_STD,) * in_channels,
        source={"kind": "bit_npz", "file": path.name, "sha256": file_sha256(path),
                "converter": "jaxtl.convert_weights.bit", "jaxtl_version": __version__})
    target = save_pretrained(out, info, variables)
    print(f"{ARCH}: {num_classes} classes, {in_channels} input channel(s) -> {target}")
    return target
