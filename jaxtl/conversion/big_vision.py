"""big_vision / AugReg ViT `.npz` -> jaxtl pretrained checkpoint.

The conversion of `python -m jaxtl.convert_weights.big_vision` (tools/convert_weights/big_vision.py,
its command line).

Reads Google's ViT releases as timm's `vision_transformer._load_weights` does. AugReg /
vision_transformer names (`ViT-B_16.npz`, `augreg/*.npz`):
  embedding/{kernel,bias}                    -> patch_embed.proj (HWIO kernel)
  cls                                        -> cls_token
  Transformer/posembed_input/pos_embedding   -> pos_embed
  Transformer/encoderblock_N/LayerNorm_0, LayerNorm_2 -> blocks.N.norm1, norm2
  .../MultiHeadDotProductAttention_1/{query,key,value} (D, heads, head_dim) -> attn.qkv
  .../MultiHeadDotProductAttention_1/out (heads, head_dim, D)               -> attn.proj
  .../MlpBlock_3/Dense_0, Dense_1            -> mlp.fc1, fc2
  Transformer/encoder_norm                   -> norm;  head -> the classifier
big_vision's own checkpoints (names under `params/`, `pos_embedding` at the top, blocks'
`MultiHeadDotProductAttention_0`, `LayerNorm_1`, `MlpBlock_0`) read the same way; an
`opt/target/` prefix is stripped too. The layout (width, depth, heads, patch, position grid,
MLP width) comes from the arrays' shapes and picks the jaxtl architecture (`vit_match`).
Refused with one line: stacked (scanned) `Transformer/encoderblock/` weights, models without
a class token (big_vision's `gap` pooling), attention-pooling heads (`MAPHead_0`, SigLIP) and
the representation layer (`pre_logits`) of the first in21k releases. Input: (x - 0.5) / 0.5,
as big_vision and AugReg preprocess (`--mean`/`--std` to override); resolution: the position
grid times the patch size.
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Mapping

import numpy as np

from jaxtl.conversion import foreign
from jaxtl.conversion.errors import ConversionError
from jaxtl.conversion.reading import read_weights
from jaxtl.conversion.vit_match import pick_architecture
from jaxtl.models.vit import ViTConfig

PREFIXES = ("opt/target/", "params/")
INPUT_MEAN = INPUT_STD = 0.5  # value_range(-1, 1)
_BLOCK = re.compile(r"^Transformer/encoderblock_(\d+)/(\w+)/(?:(\w+)/)?(kernel|bias|scale)$")
REFUSED = {"Transformer/encoderblock/": "stacked (scanned) encoder blocks: unstack them first",
           "MAPHead_0/": "an attention-pooling head (MAPHead), which jaxtl's ViT lacks",
           "pre_logits/": "a representation layer (pre_logits), which timm and jaxtl drop; "
                          "use a release without it (AugReg)"}


def strip_prefix(weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    for prefix in PREFIXES:
        if f"{prefix}embedding/kernel" in weights:
            return {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
    if "embedding/kernel" not in weights:
        raise ConversionError("the .npz has no embedding/kernel (nor under params/ or "
                              "opt/target/): not a big_vision / AugReg ViT")
    return dict(weights)


def block_names(big_vision: bool) -> dict[str, str]:
    """npz module inside an encoder block -> timm module inside blocks.N."""
    attention, norm2, mlp = (0, 1, 0) if big_vision else (1, 2, 3)
    return {"LayerNorm_0": "norm1", f"LayerNorm_{norm2}": "norm2",
            f"MultiHeadDotProductAttention_{attention}": "attn",
            f"MlpBlock_{mlp}/Dense_0": "mlp.fc1", f"MlpBlock_{mlp}/Dense_1": "mlp.fc2"}


def linear(kernel: np.ndarray) -> np.ndarray:
    """A Dense kernel (in, out) as torch's Linear weight (out, in)."""
    return np.ascontiguousarray(kernel.T)


def timm_state(weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The npz arrays under timm's names and layouts (module doc); unknown names stay as they
    are, so the conversion lists them as unexpected."""
    w = strip_prefix(weights)
    for start, why in REFUSED.items():
        if any(k.startswith(start) for k in w):
            raise ConversionError(f"the .npz has {why}")
    if "cls" not in w:
        raise ConversionError("the .npz has no class token (cls): big_vision's gap-pooled ViTs "
                              "are not in the jaxtl zoo")
    big_vision = "pos_embedding" in w
    blocks = block_names(big_vision)
    state = {"patch_embed.proj.weight": np.ascontiguousarray(
                 w.pop("embedding/kernel").transpose(3, 2, 0, 1)),
             "patch_embed.proj.bias": w.pop("embedding/bias"),
             "cls_token": w.pop("cls"),
             "pos_embed": w.pop("pos_embedding" if big_vision
                                else "Transformer/posembed_input/pos_embedding")}
    qkv: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for key, value in w.items():
        if key.startswith("Transformer/encoder_norm/"):
            leaf = key.rsplit("/", 1)[1]
            state[f"norm.{'weight' if leaf == 'scale' else leaf}"] = value
        elif key.startswith("head/"):
            leaf = key.rsplit("/", 1)[1]
            state[f"head.{'weight' if leaf == 'kernel' else leaf}"] = (
                linear(value) if leaf == "kernel" else value)
        elif (match := _BLOCK.match(key)) and f"{match[2]}/{match[3]}" in blocks:
            index, module, part, leaf = match.groups()
            state[f"blocks.{index}.{blocks[f'{module}/{part}']}."
                  f"{'bias' if leaf == 'bias' else 'weight'}"] = (
                linear(value) if leaf == "kernel" else value)
        elif (match and match[2] in blocks and blocks[match[2]] == "attn"
              and match[3] in ("query", "key", "value", "out")):
            index, _, part, leaf = match.groups()
            if part == "out":
                width = value.shape[-1]
                state[f"blocks.{index}.attn.proj.{'weight' if leaf == 'kernel' else leaf}"] = (
                    np.ascontiguousarray(value.reshape(-1, width).T) if leaf == "kernel"
                    else value)
            else:  # query/key/value: kernel (D, heads, head_dim), bias (heads, head_dim)
                flat = (value.reshape(value.shape[0], -1).T if leaf == "kernel"
                        else value.reshape(-1))
                qkv.setdefault((index, leaf), {})[part] = flat
        elif match and not match[3] and match[2] in blocks:
            index, module, _, leaf = match.groups()
            leaf = "weight" if leaf == "scale" else leaf
            state[f"blocks.{index}.{blocks[module]}.{leaf}"] = value
        else:
            state[key] = value
    return state | foreign.fused_qkv(
        qkv, lambda index: f"encoder block {index}",
        lambda leaf: "weight" if leaf == "kernel" else "bias")


def vit_config(state: Mapping[str, np.ndarray], num_heads: int) -> ViTConfig:
    """The layout the arrays' shapes give (`state` in timm names, after `timm_state`)."""
    width, _, patch, _ = state["patch_embed.proj.weight"].shape
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    positions = state["pos_embed"].shape[1] - 1  # the class token's position first
    grid = round(positions ** 0.5)
    if grid * grid != positions or depth == 0:
        raise ConversionError(f"the .npz has {positions} patch positions and {depth} encoder "
                              f"blocks: no square ViT")
    return ViTConfig(int(patch), int(width), depth, num_heads, img_size=grid * int(patch),
                     mlp_ratio=state["blocks.0.mlp.fc1.weight"].shape[0] / width,
                     qkv_bias="blocks.0.attn.qkv.bias" in state)


def heads_of(weights: Mapping[str, np.ndarray]) -> int:
    """Attention heads: the middle axis of a query kernel (D, heads, head_dim)."""
    w = strip_prefix(weights)
    query = next((v for k, v in w.items() if re.search(r"/query/kernel$", k)), None)
    if query is None or query.ndim != 3:
        raise ConversionError("the .npz has no (D, heads, head_dim) query kernel")
    return int(query.shape[1])


def convert(weights: str, out: str, *, arch: str | None = None, mean=None, std=None,
            resolution: int | None = None) -> pathlib.Path:
    path = pathlib.Path(weights).expanduser()
    if path.suffix.lower() != ".npz":
        raise ConversionError(f"--weights {path}: expected a big_vision / AugReg .npz")
    arrays = read_weights(path)
    state = timm_state(arrays)
    layout = vit_config(state, heads_of(arrays))
    arch = pick_architecture(layout, arch, f"--weights {path.name}")
    channels = state["patch_embed.proj.weight"].shape[1]
    return foreign.write_checkpoint(
        arch, state, out, weights=path, kind="big_vision_npz",
        converter="jaxtl.convert_weights.big_vision",
        resolution=resolution or layout.img_size,
        mean=mean or [INPUT_MEAN] * channels, std=std or [INPUT_STD] * channels,
        extra={"library": "big_vision", "name": path.stem})
