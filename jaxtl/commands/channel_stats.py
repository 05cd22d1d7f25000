"""Per-channel mean and standard deviation of a dataset's training images, for data.mean/std.

    python -m jaxtl.commands.channel_stats --config configs/bigearthnet.py \\
        [--max_images 5000] [--out stats.json] [--config.data.root=...]

Decodes a seeded sample of at most `max_images` training images with the dataset's own decoder
(no resizing or augmentation) and prints one JSON object: the mean and standard deviation of
every channel over all pixels of the sample, on the 0..1 scale of data.mean and data.std (for
BigEarthNet reflectance: digital number / 10000), and the command-line flags that use them.
`--out` stores the same object in a file. Without data.root the demo data are measured.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
from absl import flags

from jaxtl.commands import cli
from jaxtl.config import validation as configuration
from jaxtl.core import atomic
from jaxtl.data import loading
from jaxtl.data.decoders import Decoder
from jaxtl.data.records import Record


def define_flags() -> cli.Options:
    return {
        "config": cli.config_flag("Experiment config file."),
        "max_images": flags.DEFINE_integer("max_images", 5000, "Training images measured at "
                                           "most (a seeded sample; -1 for all)."),
        "seed": flags.DEFINE_integer("seed", 0, "Seed of the sample."),
        "out": flags.DEFINE_string("out", None, "Also write the JSON object to this file."),
    }


def channel_statistics(records: Sequence[Record], decoder: Decoder, *, max_images: int,
                       seed: int, resolution: int) -> dict:
    """Mean and std per channel over every pixel of a seeded sample of `records`."""
    chosen = np.arange(len(records))
    if 0 <= max_images < len(records):
        chosen = np.sort(np.random.default_rng(seed).choice(len(records), max_images,
                                                            replace=False))
    total = np.zeros(decoder.channels)
    squares = np.zeros(decoder.channels)
    pixels = 0
    for index in chosen:
        image = np.asarray(decoder.decode(records[index].path, resolution), np.float64)
        image = image.reshape(-1, decoder.channels) / decoder.value_scale
        total += image.sum(axis=0)
        squares += np.square(image).sum(axis=0)
        pixels += image.shape[0]
    mean = total / pixels
    std = np.sqrt(np.maximum(squares / pixels - np.square(mean), 0.0))
    return {"images": int(len(chosen)), "pixels": int(pixels),
            "mean": [round(float(m), 6) for m in mean], "std": [round(float(s), 6) for s in std]}


def main(argv: list[str], options: cli.Options) -> None:
    del argv
    config = options["config"].value
    spec = configuration.validate(config)
    splits = loading.load_splits(config, spec)
    decoder = loading.decoder(config, spec)
    stats = channel_statistics(splits.train, decoder, max_images=options["max_images"].value,
                               seed=options["seed"].value, resolution=config.data.resolution)
    tuple_text = lambda values: "(" + ",".join(str(v) for v in values) + ")"  # noqa: E731
    result = {"dataset": config.dataset, "demo": splits.demo, "split": "train",
              "channels": decoder.channels, **stats,
              "flags": f"--config.data.mean='{tuple_text(stats['mean'])}' "
                       f"--config.data.std='{tuple_text(stats['std'])}'"}
    text = json.dumps(result, indent=2)
    if options["out"].value:
        atomic.write_text(options["out"].value, text + "\n")
    print(text)


if __name__ == "__main__":
    cli.run(main, define_flags, required=("config",))
