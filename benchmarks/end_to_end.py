"""Train images/s fed from prepared shards against a batch already on the device.

    python benchmarks/end_to_end.py [--config configs/eyepacs.py] [--steps 8] [--rounds 4] \
        [--workers 1] [--out benchmarks/results/end_to_end_cpu.jsonl] [--config.x=y ...]

Builds the configured run (the demo data and demo settings when no data.root is set: ResNet18
at 80 px, batch 32), prepares its data with `jaxtl.data.prepared` into a temporary folder,
and then alternates, round after round, `--steps` train steps fed by the run's Grain stream
from the prepared shards (uint8 pixels, normalised inside the step, `--workers` worker
processes) and `--steps` steps on one batch of the stream kept on the device (in memory:
no input pipeline at all; the same compiled step, model, batch size and kind of images),
which side goes first alternating by round. The ratio of the medians is what the input
pipeline costs training (1.0: nothing). Prints one JSON object (and appends it to --out).
"""

from __future__ import annotations

import os
import pathlib
import sys
import tempfile
import time

import jax
import numpy as np
from absl import flags

from jaxtl.commands import cli, prepare
from jaxtl.config import demo_settings as demo
from jaxtl.data import prepared
from jaxtl.engine.build import build

sys.path.insert(0, str(pathlib.Path(__file__).parent))  # run as a script or with -m
from results_line import report  # noqa: E402


def define_flags() -> cli.Options:
    return {
        "config": cli.config_flag(),
        "steps": flags.DEFINE_integer("steps", 8, "Train steps per timed block."),
        "rounds": flags.DEFINE_integer("rounds", 4, "Blocks per side, alternating."),
        "workers": flags.DEFINE_integer("workers", 1, "Grain worker processes."),
        "out": flags.DEFINE_string("out", "", "Append the JSON line to this file."),
    }


def timed(step, state, batches, count: int):
    start = time.perf_counter()
    for _ in range(count):
        state, metrics = step(state, next(batches))
    jax.block_until_ready((state, metrics))
    return state, time.perf_counter() - start


def main(argv: list[str], options: cli.Options) -> None:
    del argv
    config = options["config"].value
    demo.apply(config)
    config.data.num_workers = options["workers"].value
    with tempfile.TemporaryDirectory() as folder:
        prepared.write(prepare.make_plan(config), pathlib.Path(folder), workers=1)
        config.data.prepared = folder
        run, state = build(config)
        step = run.train_step(0)
        stream = run.stream.iterator()
        state, _ = timed(step, state, stream, 2)  # compiles; starts the workers
        fixed = next(stream)  # one batch of the same images, kept on the device

        def in_memory():
            while True:
                yield fixed

        batches = {"prepared": stream, "in_memory": in_memory()}
        seconds: dict[str, list[float]] = {"prepared": [], "in_memory": []}
        for round_ in range(options["rounds"].value):
            order = ("prepared", "in_memory") if round_ % 2 == 0 else ("in_memory", "prepared")
            for side in order:
                state, spent = timed(step, state, batches[side], options["steps"].value)
                seconds[side].append(spent)
        stream.close()
    images = options["steps"].value * config.data.batch_size
    rate = {k: images / float(np.median(v)) for k, v in seconds.items()}
    result = {"benchmark": "end_to_end", "arch": config.model.arch,
              "resolution": config.data.resolution, "batch_size": config.data.batch_size,
              "workers": config.data.num_workers, "steps": options["steps"].value,
              "rounds": options["rounds"].value,
              "images_per_second": {k: round(v, 2) for k, v in rate.items()},
              "prepared_over_in_memory": round(rate["prepared"] / rate["in_memory"], 3),
              "block_seconds": {k: [round(x, 2) for x in v] for k, v in seconds.items()},
              "platform": jax.devices()[0].platform, "cpus": os.cpu_count(),
              "load_average_1min": os.getloadavg()[0]}
    report(result, options["out"].value, indent=2)
    sys.stdout.flush()


if __name__ == "__main__":
    cli.run(main, define_flags, required=("config",))
