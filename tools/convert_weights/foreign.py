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
from absl import flags

from jaxtl.commands import cli
from jaxtl.engine.transfer import save_pretrained

from .convert import convert_timm_state, file_sha256
from .errors import ConversionError


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
                     resolution: int, mean: Sequence[float] | None,
                     std: Sequence[float] | None, extra: dict | None = None) -> pathlib.Path:
    """`state` (timm names) converted for `arch` and saved to `out`; prints a summary line."""
    info, variables = convert_timm_state(
        arch, state, resolution=resolution,
        mean=[float(v) for v in mean] if mean else None,
        std=[float(v) for v in std] if std else None,
        source={"kind": kind, "file": weights.name, "sha256": file_sha256(weights),
                "converter": converter, **(extra or {})})
    target = save_pretrained(out, info, variables)
    classes = f"{info.num_classes} classes" if info.num_classes else "no classifier (backbone only)"
    print(f"{arch}: {classes}, {info.in_channels} input channel(s), {info.resolution} px, "
          f"mean {info.mean}, std {info.std} -> {target}")
    return target


def input_flags(what: str) -> cli.Options:
    """--arch/--out/--mean/--std/--resolution, as every foreign converter takes them."""
    return {
        "arch": flags.DEFINE_string("arch", None, "jaxtl ViT architecture (python -m "
                                    f"jaxtl.models --list); default: the one {what}"),
        "out": flags.DEFINE_string("out", None, "folder to write the jaxtl pretrained "
                                   "checkpoint to"),
        "mean": flags.DEFINE_list("mean", None, "per-channel input mean on the 0..1 scale "
                                  "(default: the checkpoint's)"),
        "std": flags.DEFINE_list("std", None, "per-channel input std on the 0..1 scale "
                                 "(default: the checkpoint's)"),
        "resolution": flags.DEFINE_integer("resolution", None, "input resolution the weights "
                                           "were trained at (default: the checkpoint's)"),
    }


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


def run_converter(convert: Callable[..., pathlib.Path], weights_help: str,
                  arch_source: str) -> None:
    """The command line of a converter `convert(weights, out, *, arch, mean, std, resolution)`:
    --weights (`weights_help`), --out and `input_flags(arch_source)`, as a jaxtl program."""

    def define_flags() -> cli.Options:
        return {"weights": flags.DEFINE_string("weights", None, weights_help),
                **input_flags(arch_source)}

    def main(argv: list[str], options: cli.Options) -> None:
        del argv
        convert(options["weights"].value, options["out"].value, arch=options["arch"].value,
                mean=options["mean"].value, std=options["std"].value,
                resolution=options["resolution"].value)

    cli.run(main, define_flags, required=("weights", "out"))
