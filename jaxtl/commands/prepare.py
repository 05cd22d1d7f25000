"""Decode a dataset once into ArrayRecord shards: python -m jaxtl.commands.prepare --config C --out DIR

    python -m jaxtl.commands.prepare --config configs/eyepacs.py --config.data.root=/data/eyepacs \\
        --out /fast/eyepacs-512 [--size 512] [--workers 0]

Reads every image of every split of the configured dataset with the dataset's decoder (on
every core available, with a progress bar), resizes its short side down to `--size` (default:
the config's data.resolution; give more so later runs can crop or train larger) and stores the
pixels (uint8, or uint16 for 16-bit data) in ArrayRecord shards with a manifest
(jaxtl/data/prepared.py). Training from them: the same command line as before, plus
`--config.data.prepared=DIR`. A prepare that is stopped (Ctrl-C, kill, preemption) keeps its
finished shards and goes on from there when run again with the same command; a folder that holds
another dataset or other settings is refused. Images that cannot be read are counted and stored
as unreadable, so `data.bad_images` decides at training time, as with the original files.
Without data.root the demo data are prepared (at the demo's resolution).
"""

from __future__ import annotations

import os
import pathlib

import ml_collections
from absl import flags

from jaxtl.commands import cli
from jaxtl.config import demo_settings as demo
from jaxtl.config import validation as configuration
from jaxtl.core import progress as progress_lines
from jaxtl.data import loading, prepared
from jaxtl.data.registry import DatasetSpec


def define_flags() -> cli.Options:
    return {
        "config": cli.config_flag("Config file of the data to prepare."),
        "out": flags.DEFINE_string("out", None, "Folder to write the shards and manifest to."),
        "size": flags.DEFINE_integer("size", 0, "Short side the images are stored at (only "
                                     "ever reduced); 0: the config's data.resolution.",
                                     lower_bound=0),
        "workers": flags.DEFINE_integer("workers", 0, "Processes that decode (0: one per core "
                                        "available to this process).", lower_bound=0),
        "records_per_shard": flags.DEFINE_integer(
            "records_per_shard", prepared.RECORDS_PER_SHARD, "Images per shard (the unit a "
            "stopped prepare redoes).", lower_bound=1),
    }


def make_plan(config: ml_collections.ConfigDict, size: int = 0,
              records_per_shard: int = prepared.RECORDS_PER_SHARD,
              spec: DatasetSpec | None = None) -> prepared.Plan:
    """What preparing `config`'s data writes (every record of every split, stored with its
    short side at most `size`, 0: data.resolution); the original files, whatever
    data.prepared says. `spec`: the dataset's, when the caller has it."""
    config = config.copy_and_resolve_references()
    config.data.prepared = ""
    spec = loading.spec_of(config, spec)
    root = loading.data_root(config, spec)
    source = loading.location(config, spec) or f"demo data {root}"
    return prepared.make_plan(config, loading.every_record(config, root, spec),
                              loading.decoder(config, spec), str(source),
                              size or config.data.resolution, records_per_shard)


def main(argv: list[str], options: cli.Options) -> None:
    del argv
    config = options["config"].value
    spec = configuration.dataset_spec(config)
    for note in demo.apply(config, cli.config_overrides(options["config"]), spec):
        print(note)
    configuration.validate(config, spec)
    plan = make_plan(config, options["size"].value, options["records_per_shard"].value, spec)
    out = pathlib.Path(options["out"].value).expanduser()
    workers = options["workers"].value or len(os.sched_getaffinity(0))
    bar = progress_lines.bar(len(plan.records), unit="image", desc="prepare", mininterval=1.0)

    def progress(done: int, total: int) -> None:
        del total
        bar.update(done - bar.n)

    manifest = prepared.write(plan, out, workers=workers, progress=progress)
    bar.close()
    counts = " / ".join(f"{count} {split}" for split, count in manifest["counts"].items())
    print(f"prepared {len(plan.records)} images of {plan.dataset} ({counts}) in {out}: "
          f"{manifest['pixel_dtype']} pixels, short side at most {plan.stored_size} px, "
          f"{len(manifest['shards'])} shards")
    if manifest["unreadable"]:
        print(f"{len(manifest['unreadable'])} image(s) could not be read (first: "
              f"{', '.join(manifest['unreadable'][:3])}); they are stored as unreadable and "
              f"data.bad_images decides at training time")
    print(f"train from it with --config.data.prepared={out}")


def check(argv: list[str], options: cli.Options) -> str:
    """--check: the config as this program takes it (demo settings applied)."""
    return cli.check_config(argv, options, demo_run=True)


if __name__ == "__main__":
    cli.run(main, define_flags, required=("config", "out"), check=check)
