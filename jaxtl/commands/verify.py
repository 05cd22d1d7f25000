"""python -m jaxtl.commands.verify --config CONFIG [--splits train,val,test] [--workers N] [--out FILE]

Decodes every image of the selected splits the way a run does (the dataset's decoder at
`data.resolution`), on every core, with a progress bar, and lists the images that cannot be
read: split, image id, file and why. Run it before a long run, or after a run stopped at an
unreadable image (`data.bad_images=error`) to find all of them at once. `--out` also writes the
list as JSON. A config without data (no data.root) checks the demo data, and says so with their
folder. Exit status: 0 when every image reads, 1 when some do not, 2 for a bad command.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Sequence
from typing import Any

from absl import flags

from jaxtl.commands import cli
from jaxtl.config import validation as configuration
from jaxtl.core import atomic
from jaxtl.core import progress as progress_lines
from jaxtl.core.errors import ConfigError, DataError
from jaxtl.data import loading
from jaxtl.data.demo_store import demo_root
from jaxtl.data.decoders import Decoder
from jaxtl.data.records import SPLITS
from jaxtl.data.registry import DatasetSpec

_decoder: Decoder | None = None  # set in each worker process
_resolution = 0


def define_flags() -> cli.Options:
    return {
        "config": cli.config_flag("Config file of the data to check."),
        "splits": flags.DEFINE_list("splits", list(SPLITS), "Splits to check."),
        "workers": flags.DEFINE_integer("workers", 0, "Processes that decode (0: one per core "
                                        "available to this process).", lower_bound=0),
        "out": flags.DEFINE_string("out", None, "Also write the unreadable images as JSON."),
    }


def _start(decoder: Decoder, resolution: int) -> None:
    global _decoder, _resolution
    _decoder, _resolution = decoder, resolution


def _problem(path: str) -> str | None:
    """Why the image at `path` cannot be read, or None."""
    try:
        _decoder.decode(path, _resolution)
    except DataError as error:
        return str(error)
    return None


def unreadable_images(config: Any, splits: Sequence[str], workers: int,
                      progress: bool = True, spec: DatasetSpec | None = None
                      ) -> list[dict[str, str]]:
    """Split, image id, path and error of every image of `splits` that cannot be decoded
    (`spec`: the dataset's, when the caller has it)."""
    data = loading.load_splits(config, spec)
    records = [(split, record) for split in splits for record in data.split(split)]
    decoder = loading.decoder(config, spec)
    processes = workers or len(os.sched_getaffinity(0))
    # fork: the workers share the records and need no JAX, which is never started here
    with multiprocessing.get_context("fork").Pool(processes, _start,
                                                  (decoder, config.data.resolution)) as pool:
        problems = list(progress_lines.track(
            pool.imap(_problem, [r.path for _, r in records], chunksize=16),
            total=len(records), unit="image", disable=not progress, desc="verify",
            mininterval=1.0))
    return [{"split": split, "image_id": record.image_id, "path": record.path, "error": problem}
            for (split, record), problem in zip(records, problems) if problem is not None]


def check_splits(names: Sequence[str]) -> None:
    unknown = [split for split in names if split not in SPLITS]
    if unknown:
        raise ConfigError(f"--splits names {', '.join(unknown)}; choose from "
                          f"{', '.join(SPLITS)}")


def check(argv: list[str], options: cli.Options) -> str:
    """--check: the config and --splits."""
    checked = cli.check_config(argv, options)
    check_splits(options["splits"].value)
    return checked


def main(argv: list[str], options: cli.Options) -> int:
    del argv
    config = options["config"].value
    spec = configuration.validate(config)
    check_splits(options["splits"].value)
    bad = unreadable_images(config, options["splits"].value, options["workers"].value,
                            spec=spec)
    for item in bad:
        print(f"{item['split']}\t{item['image_id']}\t{item['path']}\t{item['error']}")
    if options["out"].value:
        atomic.write_text(options["out"].value, json.dumps(bad, indent=2) + "\n")
    checked = ", ".join(options["splits"].value)
    if loading.is_demo(config, spec):
        checked += (f" of the DEMO data ({demo_root(config, spec)}; no {spec.location} set: "
                    f"pass --config.{spec.location}=/path/to/{config.dataset} to check yours)")
    print(f"{len(bad)} unreadable image(s) in {checked}"
          + ("; leave them out with --config.data.bad_images=skip, or replace them" if bad
             else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    cli.run(main, define_flags, required=("config",), check=check)
