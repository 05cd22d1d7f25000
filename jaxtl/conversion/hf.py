"""Hugging Face `transformers` ViTModel / Dinov2Model download -> jaxtl pretrained checkpoint.

The conversion of `python -m jaxtl.convert_weights.hf` (tools/convert_weights/hf.py,
its command line).

DIR is a downloaded model folder (`huggingface-cli download microsoft/rad-dino`, `owkin/phikon`):
`config.json` beside `model.safetensors` (or `pytorch_model.bin`, which needs torch), and
usually `preprocessor_config.json`, whose `image_mean`/`image_std` become the checkpoint's
input statistics (without it, give `--mean` and `--std`). The resolution is `config.json`'s
`image_size`, the grid the position embeddings were trained on.

`config.json` says the layout (`model_type` "vit" or "dinov2"; hidden_size, num_hidden_layers,
num_attention_heads, patch_size, image_size, intermediate_size or mlp_ratio, qkv_bias,
use_swiglu_ffn) and picks the jaxtl architecture (`vit_match`): Phikon (ViT-B/16) is
`vit_base_patch16_224`, RAD-DINO (DINOv2 ViT-B/14 without registers, 518 px) is
`vit_base_patch14_dinov2`, which resamples its position embeddings as Dinov2Model does.
The file's names (transformers' on-disk names, as `save_pretrained` writes them) become timm's:
  embeddings.cls_token / position_embeddings / patch_embeddings.projection ->
      cls_token / pos_embed / patch_embed.proj
  encoder.layer.N.attention.attention.{query,key,value} -> blocks.N.attn.qkv (concatenated)
  encoder.layer.N.attention.output.dense -> blocks.N.attn.proj
  ViT:    layernorm_before/after -> norm1/norm2, intermediate.dense / output.dense -> mlp.fc1/fc2
  DINOv2: norm1/norm2, mlp.fc1/fc2, layer_scale1/2.lambda1 -> ls1/ls2.gamma
  layernorm -> norm; ViTForImageClassification's `classifier` -> the classifier
  (Dinov2ForImageClassification's reads the class token and the patch tokens' mean: refused).
Left out: DINOv2's `embeddings.mask_token` (masked-image pretraining only) and ViTModel's
`pooler` (a tanh Dense on the class token that ViTModel adds by default; its output is no
part of the features these models are used by, `last_hidden_state`): a Dinov2Model or ViTModel
becomes a backbone-only checkpoint whose pooled features are HF's `last_hidden_state[:, 0]`.
HF ViT's LayerNorms use eps 1e-12 where jaxtl's ViT uses timm's 1e-6: the features differ by
far less than the parity tolerance (docs/parity.md); a larger eps is refused.
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
from jaxtl.models.vit import LAYER_NORM_EPS, ViTConfig

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
DROPPED = ("embeddings.mask_token", "pooler.dense.weight", "pooler.dense.bias")
MODEL_PREFIXES = ("vit.", "dinov2.")  # a *ForImageClassification file's backbone
# transformers 5's ViTConfig / Dinov2Config defaults: what a config.json that omits a key means
_COMMON = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, image_size=224,
               qkv_bias=True, hidden_act="gelu")
CONFIG_DEFAULTS = {"vit": _COMMON | dict(patch_size=16, intermediate_size=3072,
                                         layer_norm_eps=1e-12),
                   "dinov2": _COMMON | dict(patch_size=14, mlp_ratio=4, layer_norm_eps=1e-6,
                                            layerscale_value=1.0, use_swiglu_ffn=False)}
_LAYER = re.compile(r"^encoder\.layer\.(\d+)\.(.+)$")
_QKV = re.compile(r"^attention\.attention\.(query|key|value)\.(weight|bias)$")
_EMBEDDINGS = {"embeddings.cls_token": "cls_token", "embeddings.position_embeddings": "pos_embed",
               "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
               "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
               "layernorm.weight": "norm.weight", "layernorm.bias": "norm.bias",
               "classifier.weight": "head.weight", "classifier.bias": "head.bias"}
# module inside encoder.layer.N -> timm's inside blocks.N
_BLOCK = {"attention.output.dense": "attn.proj",
          "layernorm_before": "norm1", "layernorm_after": "norm2",  # ViT
          "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2",  # ViT
          "norm1": "norm1", "norm2": "norm2", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2",  # DINOv2
          "layer_scale1": "ls1", "layer_scale2": "ls2"}  # DINOv2 (leaf lambda1 -> gamma)


def weights_file(folder: pathlib.Path) -> pathlib.Path:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise ConversionError(f"--weights {folder} holds none of {', '.join(WEIGHT_FILES)}: give "
                          f"the downloaded Hugging Face model folder")


def vit_config(hf: Mapping) -> ViTConfig:
    """The jaxtl layout `config.json` describes; a ConversionError for what jaxtl lacks."""
    kind = hf.get("model_type")
    if kind not in CONFIG_DEFAULTS:
        raise ConversionError(f"config.json has model_type {kind!r}; this converter reads "
                              f"'vit' (ViTModel, e.g. Phikon) and 'dinov2' (Dinov2Model, e.g. "
                              f"RAD-DINO)")
    hf = CONFIG_DEFAULTS[kind] | dict(hf)
    if hf["hidden_act"] != "gelu":
        raise ConversionError(f"config.json has hidden_act {hf['hidden_act']!r}; jaxtl's ViT "
                              f"uses the exact GELU ('gelu')")
    if hf["layer_norm_eps"] > LAYER_NORM_EPS:
        raise ConversionError(f"config.json has layer_norm_eps {hf['layer_norm_eps']}; jaxtl's "
                              f"ViT uses {LAYER_NORM_EPS}, and a larger eps changes the features")
    width = int(hf["hidden_size"])
    if kind == "vit":
        mlp_ratio = int(hf["intermediate_size"]) / width
    else:
        if hf["use_swiglu_ffn"]:
            raise ConversionError("config.json has use_swiglu_ffn true (DINOv2 ViT-g): no jaxtl "
                                  "architecture has DINOv2's SwiGLU sizes")
        mlp_ratio = float(hf["mlp_ratio"])
    patch, size = hf["patch_size"], hf["image_size"]
    if isinstance(patch, list) or isinstance(size, list):
        raise ConversionError("config.json gives a non-square patch or image size")
    return ViTConfig(int(patch), width, int(hf["num_hidden_layers"]),
                     int(hf["num_attention_heads"]), mlp_ratio=mlp_ratio, img_size=int(size),
                     qkv_bias=bool(hf["qkv_bias"]),
                     init_values=float(hf["layerscale_value"]) if kind == "dinov2" else None,
                     pos_interp="dinov2" if kind == "dinov2" else "timm")


def timm_state(hf_state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """transformers' on-disk names -> timm's (module doc); names it does not know stay as they
    are, so the conversion lists them as unexpected."""
    state: dict[str, np.ndarray] = {}
    qkv: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for key, value in hf_state.items():
        for prefix in MODEL_PREFIXES:
            key = key.removeprefix(prefix)
        if key in DROPPED:
            continue
        if key in _EMBEDDINGS:
            state[_EMBEDDINGS[key]] = value
            continue
        layer = _LAYER.match(key)
        if not layer:
            state[key] = value
            continue
        index, rest = layer.groups()
        if qkv_part := _QKV.match(rest):
            part, leaf = qkv_part.groups()
            qkv.setdefault((index, leaf), {})[part] = value
            continue
        module, leaf = rest.rsplit(".", 1)
        if module in _BLOCK:
            leaf = "gamma" if leaf == "lambda1" else leaf
            state[f"blocks.{index}.{_BLOCK[module]}.{leaf}"] = value
        else:
            state[key] = value
    return state | foreign.fused_qkv(
        qkv, lambda index: f"encoder.layer.{index}.attention.attention")


def input_stats(folder: pathlib.Path, mean, std) -> tuple[list | None, list | None]:
    """--mean/--std, else preprocessor_config.json's image_mean/image_std."""
    if mean and std:
        return mean, std
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        raise ConversionError(f"{folder} has no preprocessor_config.json to read the input mean "
                              f"and std from: give --mean and --std")
    processor = foreign.read_json(path)
    if processor.get("do_normalize", True) is False or "image_mean" not in processor:
        raise ConversionError(f"{path} states no image_mean/image_std: give --mean and --std")
    return mean or processor["image_mean"], std or processor["image_std"]


def convert(weights: str, out: str, *, arch: str | None = None, mean=None, std=None,
            resolution: int | None = None) -> pathlib.Path:
    folder = pathlib.Path(weights).expanduser()
    if folder.is_file():
        folder = folder.parent
    if not (folder / "config.json").is_file():
        raise ConversionError(f"--weights {folder} has no config.json: give the downloaded "
                              f"Hugging Face model folder")
    hf = foreign.read_json(folder / "config.json")
    layout = vit_config(hf)
    arch = pick_architecture(layout, arch, f"{folder / 'config.json'} ({hf['model_type']})")
    path = weights_file(folder)
    mean, std = input_stats(folder, mean, std)
    hf_state = read_weights(path)
    if hf["model_type"] == "dinov2" and "classifier.weight" in hf_state:
        raise ConversionError("the weights hold Dinov2ForImageClassification's classifier, which "
                              "reads the class token beside the patch tokens' mean: no jaxtl "
                              "head does; convert a Dinov2Model (backbone only)")
    return foreign.write_checkpoint(
        arch, timm_state(hf_state), out, weights=path, kind=f"hf_{hf['model_type']}",
        converter="jaxtl.convert_weights.hf", resolution=resolution or layout.img_size,
        mean=mean, std=std,
        extra={"name": hf.get("_name_or_path", ""), "library": "transformers",
               "layer_norm_eps": (CONFIG_DEFAULTS[hf["model_type"]] | hf)["layer_norm_eps"]})
