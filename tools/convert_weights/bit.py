"""Original BiT `.npz` (big_transfer release) -> jaxtl pretrained checkpoint.

    python -m jaxtl.convert_weights.bit --weights BiT-M-R50x1.npz --out DIR

BiT-M/S ResNet-50x1 maps onto `resnetv2_50x1_bit`; the names it reads and the input it
records: `jaxtl.conversion.bit`.
"""

from __future__ import annotations

from absl import flags

from jaxtl.commands import cli
from jaxtl.conversion.bit import convert


def define_flags() -> cli.Options:
    return {
        "weights": flags.DEFINE_string("weights", None, "BiT .npz, e.g. BiT-M-R50x1.npz"),
        "out": flags.DEFINE_string("out", None, "folder to write the jaxtl pretrained "
                                   "checkpoint to"),
    }


def main(argv: list[str], options: cli.Options) -> None:
    del argv
    convert(options["weights"].value, options["out"].value)


if __name__ == "__main__":
    cli.run(main, define_flags, required=("weights", "out"))
