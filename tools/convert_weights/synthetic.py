"""Deterministic synthetic weights and inputs for parity checks, from NumPy alone.

The same function runs in the torch environment that produces the golden timm outputs
(`make_golden`) and in CI, which has no torch: both see bit-identical tensors (the golden files
keep a SHA-256 digest of every architecture's weights to prove it). Each tensor is drawn from
its own generator seeded by (SEED, crc32(name)), so its values depend only on its name and shape.

Random deep networks either forget their input or blow up, depending on how much each layer
amplifies; the parity tolerance (1e-4) only means something in between. So kernels are
He-scaled, running statistics are near (0, 1) but not equal to it (eval-mode normalisation is
exercised), and one number per architecture, `norm_scale` (chosen by `make_golden` with timm
and stored with the golden outputs), scales every norm and NF gain so that the logits depend
on the input (changing the image changes them by far more than 1e-4) without exploding.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Iterable, Mapping

import numpy as np

SEED = 20240611
INPUT_SEED = 7


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([SEED, zlib.crc32(name.encode())]))


TOKEN_STD = 0.5  # ViT class/register tokens and position embeddings: position matters
LAYER_SCALE = (0.1, 0.3)  # LayerScale `gamma` (ViT, ConvNeXt): every residual branch live
RESIDUAL_DAMPING = 0.3  # extra factor on the last BatchNorm scale of each ResNet block
_RESNET_BN = re.compile(r"^(layer\d+\.\d+)\.bn(\d+)\.weight$")


def synthetic_tensor(name: str, shape: Iterable[int], norm_scale: float = 1.0) -> np.ndarray:
    """The value of the timm state-dict entry `name` (torch layout) with `shape`.

    `norm_scale` multiplies norm scales (BatchNorm / GroupNorm `weight`) and NF `gain`s: the
    knob that sets how strongly a random deep network passes its input on (see `make_golden`).
    """
    shape = tuple(int(s) for s in shape)
    leaf = name.rsplit(".", 1)[-1]
    rng = _rng(name)
    if leaf == "running_mean":
        return (0.05 * rng.standard_normal(shape)).astype(np.float32)
    if leaf == "running_var":
        return rng.uniform(0.8, 1.2, shape).astype(np.float32)
    if leaf == "gain":  # NF-net ScaledStdConv2d gain, (out, 1, 1, 1)
        return rng.uniform(0.8, 1.2, shape).astype(np.float32) * np.float32(norm_scale)
    if leaf == "bias":
        return (0.05 * rng.standard_normal(shape)).astype(np.float32)
    if leaf in ("cls_token", "reg_token", "pos_embed"):
        return (TOKEN_STD * rng.standard_normal(shape)).astype(np.float32)
    if leaf == "gamma":
        return rng.uniform(*LAYER_SCALE, shape).astype(np.float32) * np.float32(norm_scale)
    if leaf == "weight" and len(shape) == 1:  # BatchNorm / GroupNorm scale
        return rng.uniform(0.9, 1.1, shape).astype(np.float32) * np.float32(norm_scale)
    if leaf == "weight" and len(shape) >= 2:  # He-scaled conv kernels, 1/sqrt(fan_in) linear
        fan_in = int(np.prod(shape[1:]))
        gain = 2.0 if len(shape) == 4 else 1.0
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(gain / fan_in))
    raise ValueError(f"no synthetic rule for {name} {shape}")


def last_residual_norms(names: Iterable[str]) -> set[str]:
    """`layerX.Y.bnN.weight` with the highest N of its ResNet block (bn2 or bn3)."""
    last: dict[str, tuple[int, str]] = {}
    for name in names:
        match = _RESNET_BN.match(name)
        if match:
            last[match[1]] = max(last.get(match[1], (0, "")), (int(match[2]), name))
    return {name for _, name in last.values()}


def synthetic_state_dict(manifest: Iterable[tuple[str, Iterable[int]]],
                         norm_scale: float = 1.0) -> dict[str, np.ndarray]:
    """{name: tensor} for a manifest of (timm state-dict name, torch shape), in its order.

    The last BatchNorm of each ResNet block gets RESIDUAL_DAMPING on top of `norm_scale`, so
    the residual sum does not double the signal's variance in every one of up to 50 blocks.
    """
    manifest = [(name, tuple(shape)) for name, shape in manifest]
    damped = last_residual_norms(name for name, _ in manifest)
    return {name: synthetic_tensor(name, shape, norm_scale * (RESIDUAL_DAMPING if name in damped
                                                              else 1.0))
            for name, shape in manifest}


def digest(state: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over names, shapes and float32 bytes, in the mapping's order."""
    h = hashlib.sha256()
    for name, value in state.items():
        value = np.ascontiguousarray(value, np.float32)
        h.update(f"{name}{value.shape}".encode())
        h.update(value.tobytes())
    return h.hexdigest()


def synthetic_input(resolution: int, channels: int) -> np.ndarray:
    """A fixed (1, resolution, resolution, channels) float32 NHWC image (already normalised)."""
    rng = np.random.default_rng([INPUT_SEED, resolution, channels])
    return rng.standard_normal((1, resolution, resolution, channels)).astype(np.float32)


def bit_npz_from_timm(state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A timm `resnetv2_50x1_bit` state dict in the original BiT `.npz` naming and layout
    (TF HWIO kernels), the inverse of timm's `resnetv2._load_weights`."""

    def hwio(w: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(w.transpose(2, 3, 1, 0))

    out = {
        "resnet/root_block/standardized_conv2d/kernel": hwio(state["stem.conv.weight"]),
        "resnet/group_norm/gamma": state["norm.weight"],
        "resnet/group_norm/beta": state["norm.bias"],
        "resnet/head/conv2d/kernel": hwio(state["head.fc.weight"]),
        "resnet/head/conv2d/bias": state["head.fc.bias"],
    }
    units = {"1": "a", "2": "b", "3": "c"}
    for name, value in state.items():
        parts = name.split(".")
        if parts[0] != "stages":
            continue
        prefix = f"resnet/block{int(parts[1]) + 1}/unit{int(parts[3]) + 1:02d}/"
        module, leaf = parts[4], parts[-1]
        if module == "downsample":
            out[prefix + "a/proj/standardized_conv2d/kernel"] = hwio(value)
        elif module.startswith("conv"):
            out[prefix + f"{units[module[-1]]}/standardized_conv2d/kernel"] = hwio(value)
        elif module.startswith("norm"):
            out[prefix + f"{units[module[-1]]}/group_norm/"
                + {"weight": "gamma", "bias": "beta"}[leaf]] = value
        else:
            raise ValueError(f"unexpected resnetv2 key {name}")
    return out
