"""Synthetic timm ViT weights written in other libraries' layouts, for the golden tests of the
`hf`, `open_clip` and `big_vision` converters (NumPy only, as `synthetic`).

`make_library_golden` writes these files, has the library itself load them (transformers'
`from_pretrained`, open_clip's `load_state_dict`, timm's big_vision `.npz` loader) and stores
the library's outputs; CI rebuilds the same files from the same NumPy weights (their digests
are kept) and converts them. The inverse mappings here are only how the test files are made:
what is checked is the converter against the library's own reading of the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from . import synthetic

FILLER_STD = 0.02  # tensors the converters drop (text tower, pooler, mask token)


def filler(name: str, shape: Iterable[int]) -> np.ndarray:
    """A seeded value for a tensor the converters leave out (it only has to exist)."""
    values = FILLER_STD * synthetic._rng(name).standard_normal(tuple(shape))
    return np.asarray(values, np.float32)  # a 0-d array for a scalar (logit_scale)


def _split_qkv(state: Mapping[str, np.ndarray], block: str) -> dict[str, tuple[np.ndarray, ...]]:
    return {leaf: tuple(np.split(state[f"{block}.attn.qkv.{leaf}"], 3, axis=0))
            for leaf in ("weight", "bias")}


def hf_from_timm(state: Mapping[str, np.ndarray], model_type: str) -> dict[str, np.ndarray]:
    """A timm ViT state dict (no classifier) in transformers' on-disk names: ViTModel's
    ('vit', with a pooler) or Dinov2Model's ('dinov2', with a mask token)."""
    width = state["cls_token"].shape[-1]
    out = {"embeddings.cls_token": state["cls_token"],
           "embeddings.position_embeddings": state["pos_embed"],
           "embeddings.patch_embeddings.projection.weight": state["patch_embed.proj.weight"],
           "embeddings.patch_embeddings.projection.bias": state["patch_embed.proj.bias"],
           "layernorm.weight": state["norm.weight"], "layernorm.bias": state["norm.bias"]}
    if model_type == "dinov2":
        out["embeddings.mask_token"] = filler("embeddings.mask_token", (1, width))
        modules = {"norm1": "norm1", "norm2": "norm2", "mlp.fc1": "mlp.fc1",
                   "mlp.fc2": "mlp.fc2"}
    else:
        out["pooler.dense.weight"] = filler("pooler.dense.weight", (width, width))
        out["pooler.dense.bias"] = filler("pooler.dense.bias", (width,))
        modules = {"norm1": "layernorm_before", "norm2": "layernorm_after",
                   "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense"}
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    for i in range(depth):
        block, layer = f"blocks.{i}", f"encoder.layer.{i}"
        for leaf, (q, k, v) in _split_qkv(state, block).items():
            for part, value in (("query", q), ("key", k), ("value", v)):
                out[f"{layer}.attention.attention.{part}.{leaf}"] = np.ascontiguousarray(value)
        for leaf in ("weight", "bias"):
            out[f"{layer}.attention.output.dense.{leaf}"] = state[f"{block}.attn.proj.{leaf}"]
            for timm_module, hf_module in modules.items():
                out[f"{layer}.{hf_module}.{leaf}"] = state[f"{block}.{timm_module}.{leaf}"]
        if model_type == "dinov2":
            out[f"{layer}.layer_scale1.lambda1"] = state[f"{block}.ls1.gamma"]
            out[f"{layer}.layer_scale2.lambda1"] = state[f"{block}.ls2.gamma"]
    return out


def big_vision_from_timm(state: Mapping[str, np.ndarray], num_heads: int, *,
                         big_vision: bool = False) -> dict[str, np.ndarray]:
    """A timm class-token ViT state dict in Google's `.npz` naming: AugReg's, or big_vision's
    (`params/` prefix, `pos_embedding`, sub-module indices 0/1/0), the inverse of timm's
    `vision_transformer._load_weights`."""
    width = state["cls_token"].shape[-1]
    heads, head_dim = num_heads, width // num_heads
    prefix = "params/" if big_vision else ""
    attention, norm2, mlp = (0, 1, 0) if big_vision else (1, 2, 3)
    out = {"embedding/kernel": np.ascontiguousarray(
               state["patch_embed.proj.weight"].transpose(2, 3, 1, 0)),
           "embedding/bias": state["patch_embed.proj.bias"],
           "cls": state["cls_token"],
           ("pos_embedding" if big_vision else "Transformer/posembed_input/pos_embedding"):
               state["pos_embed"],
           "Transformer/encoder_norm/scale": state["norm.weight"],
           "Transformer/encoder_norm/bias": state["norm.bias"]}
    if "head.weight" in state:
        out["head/kernel"] = np.ascontiguousarray(state["head.weight"].T)
        out["head/bias"] = state["head.bias"]
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    for i in range(depth):
        block, enc = f"blocks.{i}", f"Transformer/encoderblock_{i}"
        qkv = _split_qkv(state, block)
        mha = f"{enc}/MultiHeadDotProductAttention_{attention}"
        for n, part in enumerate(("query", "key", "value")):
            out[f"{mha}/{part}/kernel"] = np.ascontiguousarray(
                qkv["weight"][n].T.reshape(width, heads, head_dim))
            out[f"{mha}/{part}/bias"] = qkv["bias"][n].reshape(heads, head_dim)
        out[f"{mha}/out/kernel"] = np.ascontiguousarray(
            state[f"{block}.attn.proj.weight"].T.reshape(heads, head_dim, width))
        out[f"{mha}/out/bias"] = state[f"{block}.attn.proj.bias"]
        for norm, timm_norm in ((0, "norm1"), (norm2, "norm2")):
            out[f"{enc}/LayerNorm_{norm}/scale"] = state[f"{block}.{timm_norm}.weight"]
            out[f"{enc}/LayerNorm_{norm}/bias"] = state[f"{block}.{timm_norm}.bias"]
        for dense, fc in ((0, "fc1"), (1, "fc2")):
            out[f"{enc}/MlpBlock_{mlp}/Dense_{dense}/kernel"] = np.ascontiguousarray(
                state[f"{block}.mlp.{fc}.weight"].T)
            out[f"{enc}/MlpBlock_{mlp}/Dense_{dense}/bias"] = state[f"{block}.mlp.{fc}.bias"]
    return {prefix + k: v for k, v in out.items()}


def open_clip_from_timm(trunk: Mapping[str, np.ndarray],
                        manifest: Iterable[tuple[str, Iterable[int]]]) -> dict[str, np.ndarray]:
    """An open_clip state dict (names and shapes: `manifest`) whose `visual.trunk.*` is the
    timm state dict `trunk`; every other tensor (text tower, projection) is `filler`."""
    out = {}
    for name, shape in manifest:
        key = name[len("visual.trunk."):] if name.startswith("visual.trunk.") else None
        out[name] = trunk[key] if key is not None else filler(name, shape)
    return out
