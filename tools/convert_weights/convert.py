"""State dict in timm naming -> jaxtl pretrained checkpoint (shared by the timm and BiT tools)."""

from __future__ import annotations

import hashlib
import pathlib
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxtl import __version__, models
from jaxtl.engine.transfer import PretrainedInfo

from .errors import ConversionError
from .timm_layout import convert_state_dict, timm_checkpoint


def file_sha256(path: str | pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def expected_variables(arch: str, num_classes: int, in_channels: int) -> dict:
    """The jaxtl model's variables as ShapeDtypeStructs (no computation)."""
    model = models.create_model(arch, num_outputs=num_classes)
    size = max(timm_checkpoint(arch).resolution, 75)
    return jax.eval_shape(lambda: model.init(
        jax.random.key(0), jnp.zeros((1, size, size, in_channels), jnp.float32), train=False))


def input_stats(values: Sequence[float] | None, default: Sequence[float], channels: int,
                name: str) -> tuple[float, ...]:
    """Per-channel mean/std: given, or the architecture's default (averaged when the weights
    were made for another number of channels, e.g. one grey channel)."""
    if values:
        if len(values) != channels:
            raise ConversionError(f"--{name} has {len(values)} values; the weights take "
                                  f"{channels} input channel(s)")
        return tuple(float(v) for v in values)
    if len(default) == channels:
        return tuple(default)
    return (float(np.mean(default)),) * channels


def convert_timm_state(
    arch: str,
    state: Mapping[str, np.ndarray],
    *,
    source: dict,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    resolution: int | None = None,
    ignore: tuple[str, ...] = (),
) -> tuple[PretrainedInfo, dict]:
    """(metadata, variables) for a timm-named state dict of `arch`."""
    info = timm_checkpoint(arch)
    for key in (info.first_conv + ".weight", info.classifier + ".weight"):
        if key not in state:
            raise ConversionError(f"the weights have no {key}, which every {arch} checkpoint "
                                  f"has: is --arch right? (first names in the file: "
                                  f"{', '.join(list(state)[:5])})")
    in_channels = int(state[info.first_conv + ".weight"].shape[1])
    num_classes = int(state[info.classifier + ".weight"].shape[0])
    variables = convert_state_dict(arch, state, expected_variables(arch, num_classes, in_channels),
                                   ignore=ignore)
    metadata = PretrainedInfo(
        arch=arch, num_classes=num_classes, in_channels=in_channels,
        resolution=int(resolution or info.resolution),
        mean=input_stats(mean, info.mean, in_channels, "mean"),
        std=input_stats(std, info.std, in_channels, "std"),
        source=source | {"jaxtl_version": __version__})
    return metadata, variables
