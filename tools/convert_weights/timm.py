"""timm (or torchvision) checkpoint -> jaxtl pretrained checkpoint.

    python -m jaxtl.convert_weights.timm --arch resnet50 --weights model.safetensors --out DIR

`--weights` is a timm state dict as `.safetensors` (read without torch) or `.pth`/`.bin`
(needs torch; read with `torch.load(weights_only=True)`, so only tensors are ever unpickled).
DIR receives `pretrained.json` + `variables.safetensors`; use it with `--config.model.init=DIR`
or `jaxtl.engine.transfer.load(DIR)`. The conversion, its rules and defaults:
`jaxtl.conversion.timm`.
"""

from __future__ import annotations

from absl import flags

from jaxtl.commands import cli
from jaxtl.conversion.timm import convert
from jaxtl.conversion.timm_layout import convertible_architectures


def define_flags() -> cli.Options:
    return {
        "arch": flags.DEFINE_enum("arch", None, sorted(convertible_architectures()),
                                  "jaxtl architecture (python -m jaxtl.models --list)"),
        "weights": flags.DEFINE_string("weights", None, "timm/torchvision state dict: "
                                       ".safetensors, .pth or .bin"),
        "out": flags.DEFINE_string("out", None, "folder to write the jaxtl pretrained "
                                   "checkpoint to"),
        "mean": flags.DEFINE_list("mean", None, "per-channel input mean on the 0..1 scale "
                                  "(default: the weights')"),
        "std": flags.DEFINE_list("std", None, "per-channel input std on the 0..1 scale "
                                 "(default: the weights')"),
        "resolution": flags.DEFINE_integer("resolution", None, "input resolution the weights "
                                           "were trained at"),
        "ignore": flags.DEFINE_list("ignore", [], "state-dict entries that are not weights, "
                                    "e.g. op_threshs"),
    }


def main(argv: list[str], options: cli.Options) -> None:
    del argv
    convert(options["arch"].value, options["weights"].value, options["out"].value,
            mean=options["mean"].value, std=options["std"].value,
            resolution=options["resolution"].value, ignore=options["ignore"].value)


if __name__ == "__main__":
    cli.run(main, define_flags, required=("arch", "weights", "out"))
