"""Throughput of a config: python -m jaxtl.commands.bench --config configs/eyepacs.py [--steps 10]

Prints one JSON object on stdout: train-step images/s of the configured model on synthetic
device batches (pixels in the dtype the pipeline sends, warped (crop, flip, rotation of image
files) and normalised inside the step, as in training) after compilation, the compile time, and
the input pipeline's images/s at the configured resolution on the configured data (the prepared
shards with data.prepared) with the bytes each image sends from host to device. Like every
program that trains, a config without data (no data.root) is a demo run: the demo images and the
demo settings (config.demo: model, resolution, batch, workers), as `python -m jaxtl.main` would
train it. Each stage (data, compiling, timed steps, pipeline) is announced on stderr before it
starts, with progress. Add --config.x=y overrides as for training; any architecture of
`python -m jaxtl.models --list` works (--config.model.arch=NAME with data, --config.demo.arch=NAME
without). --pipeline_batches=0 measures the train step only.
"""

from __future__ import annotations

import json
import time

import jax
import numpy as np
from absl import flags, logging

from jaxtl import models, optim
from jaxtl.commands import cli
from jaxtl.config import demo_settings
from jaxtl.config import validation as configuration
from jaxtl.core import progress, tasks
from jaxtl.data import loading, pipeline
from jaxtl.data.transforms import IDENTITY_WARP
from jaxtl.engine import steps
from jaxtl.engine.build import image_transform


def define_flags() -> cli.Options:
    return {
        "config": cli.config_flag("Experiment config file."),
        "steps": flags.DEFINE_integer("steps", 5, "Timed train steps (after one compiling "
                                      "step).", lower_bound=1),
        "pipeline_batches": flags.DEFINE_integer("pipeline_batches", 20, "Timed input batches; "
                                                 "0 skips the input pipeline.", lower_bound=0),
    }


def synthetic_batch(layout: pipeline.Layout, batch_size: int, shape: tuple[int, ...],
                    num_classes: int, dtype: str = "float32",
                    warps: bool = False) -> dict[str, jax.Array]:
    """Random pixels of `dtype` (integers over their whole range) and labels; with `warps`,
    each image's warp too (the identity: sampling costs the same whatever the map)."""
    local = layout.local_batch_size(batch_size, "data.batch_size")
    rng = np.random.default_rng(0)
    if np.dtype(dtype).kind == "u":
        image = rng.integers(0, np.iinfo(dtype).max, (local, *shape), endpoint=True,
                             dtype=dtype)
    else:
        image = rng.standard_normal((local, *shape), np.float32)
    batch = {"image": image, "label": rng.integers(0, num_classes, local).astype(np.int32)}
    if warps:
        batch["warp"] = np.tile(IDENTITY_WARP, (local, 1, 1))
    return {k: jax.make_array_from_process_local_data(layout.sharding, v)
            for k, v in batch.items()}


def bench_train_step(config, num_classes: int, channels: int, timed_steps: int) -> dict:
    mesh = steps.make_mesh()
    layout = pipeline.Layout.from_mesh(mesh)
    model = models.create_model(config.model.arch, num_outputs=num_classes,
                                head=config.model.head, dropout=config.model.dropout,
                                dtype=config.model.dtype)
    tx = optim.make_optimizer(config, steps_per_epoch=100, total_steps=1000).tx
    shape = (config.data.resolution, config.data.resolution, channels)
    state = steps.init_state(model, tx, seed=0, image_shape=shape, mesh=mesh)
    transform = image_transform(config, augment=True)
    batch = synthetic_batch(layout, config.data.batch_size, shape, num_classes,
                            transform.wire_dtype, transform.warps_on_device)
    task = tasks.multiclass([str(c) for c in range(num_classes)])
    train_step = steps.make_train_step(model, tx, mesh, task=task,
                                       normalisation=transform.normalisation)
    logging.info("compiling the train step: %s at %d px, batch %d, %s",
                 config.model.arch, config.data.resolution, config.data.batch_size,
                 config.model.dtype)
    start = time.perf_counter()
    compiled = train_step.lower(state, batch).compile()
    compile_seconds = time.perf_counter() - start
    logging.info("compiled in %.1f s; one warm-up step, then %d timed steps", compile_seconds,
                 timed_steps)
    state, metrics = compiled(state, batch)  # warm-up
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    with progress.bar(timed_steps, desc="train steps", unit="step") as bar:
        previous = None
        for _ in range(timed_steps):
            state, metrics = compiled(state, batch)
            if previous is not None:  # one step in flight, as in training
                jax.block_until_ready(previous)
                bar.update(1)
            previous = metrics
        jax.block_until_ready((state, metrics))
        bar.update(1)
    seconds = time.perf_counter() - start
    return {"compile_seconds": compile_seconds, "timed_steps": timed_steps,
            "params": sum(x.size for x in jax.tree.leaves(state.params)),
            "train_images_per_second": timed_steps * config.data.batch_size / seconds,
            "train_step_seconds": seconds / timed_steps,
            "augmentation_on_device": transform.warps_on_device,
            "devices": mesh.size, "platform": jax.devices()[0].platform}


def bench_pipeline(config, splits, batches: int) -> dict:
    layout = pipeline.Layout.from_mesh(steps.make_mesh())
    stream = pipeline.train_stream(splits.train, image_transform(config, augment=True),
                                   global_batch=config.data.batch_size,
                                   epochs=config.train.epochs, seed=0, layout=layout,
                                   num_workers=config.data.num_workers,
                                   prefetch=config.data.prefetch_batches)
    workers = pipeline.worker_count(config.data.num_workers)
    logging.info("starting the input pipeline (%d worker process(es)), then timing %d batches "
                 "of %d images", workers, batches, config.data.batch_size)
    iterator = stream.iterator()
    try:
        first = jax.block_until_ready(next(iterator))  # starts the workers
        per_image = {key: value.dtype.itemsize * value.size // value.shape[0]
                     for key, value in first.items()}
        start = time.perf_counter()
        count = 0
        for _ in progress.track(range(batches), total=batches, desc="input batches",
                                unit="batch"):
            jax.block_until_ready(next(iterator))
            count += config.data.batch_size
        seconds = time.perf_counter() - start
    finally:
        pipeline.close(iterator)
    return {"pipeline_images_per_second": count / seconds,
            "pipeline_workers": workers,
            "pixel_dtype": str(first["image"].dtype),
            "host_to_device_bytes_per_image": sum(per_image.values()),
            "host_to_device_image_bytes_per_image": per_image["image"]}


def main(argv: list[str], options: cli.Options) -> None:
    del argv
    config = options["config"].value
    spec = configuration.dataset_spec(config)
    for note in demo_settings.apply(config, cli.config_overrides(options["config"]), spec):
        logging.info(note)
    configuration.validate(config, spec)
    logging.info("reading the %s data", config.dataset)
    splits = loading.load_splits(config, spec)
    result = {"arch": config.model.arch, "resolution": config.data.resolution,
              "batch_size": config.data.batch_size, "dtype": config.model.dtype,
              "demo": splits.demo,
              "pipeline_data": "DEMO" if splits.demo else loading.location(config, spec),
              "prepared": config.data.prepared or None,
              **bench_train_step(config, splits.num_classes, config.data.channels,
                                 options["steps"].value)}
    if options["pipeline_batches"].value > 0:
        result |= bench_pipeline(config, splits, options["pipeline_batches"].value)
    print(json.dumps(result, indent=2))


def check(argv: list[str], options: cli.Options) -> str:
    """--check: the config as the benchmark takes it (demo settings applied)."""
    return cli.check_config(argv, options, demo_run=True)


if __name__ == "__main__":
    cli.run(main, define_flags, required=("config",), check=check)
