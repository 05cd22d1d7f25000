"""State dict in timm naming -> jaxtl pretrained checkpoint (shared by the timm and BiT tools).

A checkpoint without a classifier (timm's `num_classes=0` exports, MAE/DINOv2 encoders) becomes
a backbone-only checkpoint (`num_classes` 0: for `model.init`, whose head starts fresh anyway).
A masked-autoencoder pretraining file (RETFound's MAE `.pth`, the state dict under `model`) also
holds the MAE decoder (`decoder_*`, `mask_token`), which is no part of the encoder and is left
out; for an architecture that pools with `fc_norm` (the `_avg` ViTs) its final `norm` is
dropped and `fc_norm` starts as the identity (scale 1, bias 0), as RETFound's and MAE's
fine-tuning code does (`models_vit.VisionTransformer(global_pool=True)` loaded non-strictly).
"""

from __future__ import annotations

import functools
import hashlib
import pathlib
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxtl import __version__, models
from jaxtl.conversion.errors import ConversionError
from jaxtl.conversion.timm_layout import convert_state_dict, timm_checkpoint
from jaxtl.models import HEAD
from jaxtl.workdir.pretrained import PretrainedInfo


def file_sha256(path: str | pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@functools.lru_cache(maxsize=8)
def expected_variables(arch: str, num_classes: int, in_channels: int) -> dict:
    """The jaxtl model's variables as ShapeDtypeStructs (no computation)."""
    model = models.create_model(arch, num_outputs=num_classes)
    size = max(timm_checkpoint(arch).resolution, 75)
    return jax.eval_shape(lambda: model.init(
        jax.random.key(0), jnp.zeros((1, size, size, in_channels), jnp.float32), train=False))


MAE_DECODER = ("decoder_", "mask_token")  # MAE pretraining's decoder: not the encoder's


def mae_encoder(arch: str, state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`state` without an MAE pretraining file's decoder and, for an architecture pooling with
    `fc_norm` given a file that has the final `norm` instead, with RETFound's fine-tuning start:
    `norm` dropped, `fc_norm` the identity (module doc)."""
    state = {k: v for k, v in state.items() if not k.startswith(MAE_DECODER)}
    fc_norm = "params/backbone/fc_norm/scale"
    wanted = expected_variables(arch, 1, int(state[timm_checkpoint(arch).first_conv
                                                  + ".weight"].shape[1]))
    flat = {f"{c}/{name}" for c, tree in wanted.items()
            for name in traverse_util.flatten_dict(tree, sep="/")}
    if fc_norm in flat and "fc_norm.weight" not in state and "norm.weight" in state:
        width = state["norm.weight"].shape[0]
        del state["norm.weight"], state["norm.bias"]
        state["fc_norm.weight"] = np.ones(width, np.float32)
        state["fc_norm.bias"] = np.zeros(width, np.float32)
    return state


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
    key = info.first_conv + ".weight"
    if key not in state:
        raise ConversionError(f"the weights have no {key}, which every {arch} checkpoint "
                              f"has: is --arch right? (first names in the file: "
                              f"{', '.join(list(state)[:5])})")
    state = mae_encoder(arch, state)
    in_channels = int(state[info.first_conv + ".weight"].shape[1])
    has_head = info.classifier + ".weight" in state
    num_classes = int(state[info.classifier + ".weight"].shape[0]) if has_head else 0
    expected = expected_variables(arch, max(num_classes, 1), in_channels)
    if not has_head:
        expected = {collection: {k: v for k, v in tree.items() if k != HEAD}
                    for collection, tree in expected.items()}
    variables = convert_state_dict(arch, state, expected, ignore=ignore)
    metadata = PretrainedInfo(
        arch=arch, num_classes=num_classes, in_channels=in_channels,
        resolution=int(resolution or info.resolution),
        mean=input_stats(mean, info.mean, in_channels, "mean"),
        std=input_stats(std, info.std, in_channels, "std"),
        source=source | {"jaxtl_version": __version__})
    return metadata, variables
