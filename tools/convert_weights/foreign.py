"""The command line the converters of other libraries' ViTs share (`hf`, `open_clip`,
`big_vision`): --weights, --out, --arch, --mean, --std, --resolution, as a jaxtl program over
a `convert` function of `jaxtl.conversion`."""

from __future__ import annotations

import pathlib
from collections.abc import Callable

from absl import flags

from jaxtl.commands import cli


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
