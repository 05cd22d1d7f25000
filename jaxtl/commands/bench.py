"""Throughput of a config: python -m jaxtl.commands.bench --config configs/eyepacs.py [--steps 10]

Prints one JSON object: train-step images/s of the configured model on synthetic device batches
(pixels in the dtype the pipeline sends, warped (crop, flip, rotation of image files) and
normalised inside the step, as in training) after
compilation, the compile time, and the input pipeline's images/s at the configured resolution
on the configured data (the demo images when no data.root is set, the prepared shards with
data.prepared; the demo's smaller model settings are not applied here) with the bytes each
image sends from host to device. Add --config.x=y overrides as for training; any
architecture of `python -m jaxtl.models --list` works (--config.model.arch=NAME).
--pipeline_batches=0 measures the train step only.
"""

from __future__ import annotations

import json
import time

import jax
import numpy as np
from absl import flags

from jaxtl import models, optim
from jaxtl.commands import cli
from jaxtl.config import validation as configuration
from jaxtl.core import tasks
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
    start = time.perf_counter()
    compiled = train_step.lower(state, batch).compile()
    compile_seconds = time.perf_counter() - start
    state, metrics = compiled(state, batch)  # warm-up
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(timed_steps):
        state, metrics = compiled(state, batch)
    jax.block_until_ready((state, metrics))
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
    iterator = stream.iterator()
    first = jax.block_until_ready(next(iterator))  # starts the workers
    per_image = {key: value.dtype.itemsize * value.size // value.shape[0]
                 for key, value in first.items()}
    start = time.perf_counter()
    count = 0
    for _ in range(batches):
        jax.block_until_ready(next(iterator))
        count += config.data.batch_size
    seconds = time.perf_counter() - start
    pipeline.close(iterator)
    return {"pipeline_images_per_second": count / seconds,
            "pipeline_workers": pipeline.worker_count(config.data.num_workers),
            "pixel_dtype": str(first["image"].dtype),
            "host_to_device_bytes_per_image": sum(per_image.values()),
            "host_to_device_image_bytes_per_image": per_image["image"]}


def main(argv: list[str], options: cli.Options) -> None:
    del argv
    config = options["config"].value
    spec = configuration.validate(config)
    splits = loading.load_splits(config, spec)
    result = {"arch": config.model.arch, "resolution": config.data.resolution,
              "batch_size": config.data.batch_size, "dtype": config.model.dtype,
              "pipeline_data": "DEMO" if splits.demo else loading.location(config, spec),
              "prepared": config.data.prepared or None,
              **bench_train_step(config, splits.num_classes, config.data.channels,
                                 options["steps"].value)}
    if options["pipeline_batches"].value > 0:
        result |= bench_pipeline(config, splits, options["pipeline_batches"].value)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    cli.run(main, define_flags, required=("config",))
