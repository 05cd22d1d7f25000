"""What the converters of other libraries' ViTs share (Hugging Face `hf`, `open_clip`,
`big_vision`): each renames its checkpoint into timm's state-dict names, picks the jaxtl
architecture (`vit_match`), and hands over here, where `convert.convert_timm_state` checks
every name and shape and the jaxtl pretrained folder is written with the checkpoint's input
statistics and where it came from.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from jaxtl.conversion.convert import convert_timm_state, file_sha256
from jaxtl.conversion.errors import ConversionError
from jaxtl.workdir.pretrained import save_pretrained


def read_json(path: pathlib.Path) -> dict:
    """A JSON object file; a ConversionError naming the file if it is not one."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ConversionError(f"{path} is not a readable JSON file ({error})") from None
    if not isinstance(data, dict):
        raise ConversionError(f"{path} holds no JSON object")
    return data


def write_checkpoint(arch: str, state: Mapping[str, np.ndarray], out: str, *,
                     weights: pathlib.Path, kind: str, converter: str,
                     resolution: int | None, mean: Sequence[float] | None,
                     std: Sequence[float] | None, extra: dict | None = None,
                     ignore: Sequence[str] = ()) -> pathlib.Path:
    """`state` (timm names) converted for `arch` and saved to `out`; prints a summary line.
    `ignore`: state-dict entries that are not weights."""
    info, variables = convert_timm_state(
        arch, state, resolution=resolution,
        mean=[float(v) for v in mean] if mean else None,
        std=[float(v) for v in std] if std else None, ignore=tuple(ignore),
        source={"kind": kind, "file": weights.name, "sha256": file_sha256(weights),
                "converter": converter, **(extra or {})})
    target = save_pretrained(out, info, variables)
    classes = f"{info.num_classes} classes" if info.num_classes else "no classifier (backbone only)"
    print(f"{arch}: {classes}, {info.in_channels} input channel(s), {info.resolution} px, "
          f"mean {info.mean}, std {info.std} -> {target}")
    return target


def fused_qkv(qkv: Mapping[tuple[str, str], Mapping[str, np.ndarray]],
              where: Callable[[str], str],
              timm_leaf: Callable[[str], str] = lambda leaf: leaf) -> dict[str, np.ndarray]:
    """timm's fused `blocks.N.attn.qkv.<leaf>` arrays from a checkpoint's separate query, key
    and value ones: `qkv` maps (block index, the checkpoint's leaf name) to {'query': ...,
    'key': ..., 'value': ...}, already in timm's (out, in) orientation; `where(index)` names the
    block in the checkpoint's own terms for the error when one of the three is missing;
    `timm_leaf`: the checkpoint's leaf name -> timm's ('weight', 'bias')."""
    fused = {}
    for (index, leaf), parts in qkv.items():
        if set(parts) != {"query", "key", "value"}:
            raise ConversionError(f"{where(index)} has {', '.join(sorted(parts))} {leaf} but "
                                  f"not all of query, key and value")
        fused[f"blocks.{index}.attn.qkv.{timm_leaf(leaf)}"] = np.concatenate(
            [parts["query"], parts["key"], parts["value"]], axis=0)
    return fused
