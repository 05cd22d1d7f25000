"""Prints, as JSON, the losses of a few train steps on a mesh of one device and on one of four;
run with four devices (one process compiles both: a second process would import JAX and jaxtl
again for the same answer). The optimizer is written out (the eyepacs config's SGD: Nesterov
momentum 0.9, coupled weight decay 1e-4, a flat rate of 0.05) rather than loaded from
configs/eyepacs.py: loading a config imports jaxtl.config.base and with it scikit-learn, a third
of this script's time.

Used by test_steps.py: XLA_FLAGS=--xla_force_host_platform_device_count=4 python sharded_losses.py
"""

from __future__ import annotations

import json

import jax
import numpy as np
import optax

from jaxtl import models
from jaxtl.core import tasks
from jaxtl.data import pipeline
from jaxtl.engine import steps


def losses_on(devices: list[jax.Device]) -> dict:
    """A few train steps of small_cnn on a mesh of `devices`, from the same seed and batches."""
    # small_cnn: convolutions and BatchNorm, compiled in seconds
    model = models.create_model("small_cnn", num_outputs=5, head="mlp_128", dropout=0.0)
    tx = optax.chain(optax.add_decayed_weights(1e-4), optax.sgd(0.05, momentum=0.9, nesterov=True))
    mesh = steps.make_mesh(devices)
    layout = pipeline.Layout.from_mesh(mesh)
    state = steps.init_state(model, tx, seed=0, image_shape=(32, 32, 3), mesh=mesh)
    task = tasks.multiclass([str(grade) for grade in range(5)])
    train_step = steps.make_train_step(model, tx, mesh, task=task)
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(4):
        batch = {"image": rng.standard_normal((8, 32, 32, 3), np.float32),
                 "label": rng.integers(0, 5, 8).astype(np.int32)}
        batch = {k: jax.make_array_from_process_local_data(layout.sharding, v)
                 for k, v in batch.items()}
        state, metrics = train_step(state, batch)
        losses.append(float(metrics["loss"]))
    shards = {str(s.device) for s in batch["image"].addressable_shards}
    return {"devices": mesh.devices.size, "losses": losses, "batch_shards": len(shards),
            "bn_mean": float(np.asarray(jax.tree_util.tree_leaves(state.batch_stats)[0]).sum())}


def main() -> None:
    print(json.dumps({"process_devices": len(jax.devices()),
                      "one": losses_on(jax.devices()[:1]), "four": losses_on(jax.devices()[:4])}))


if __name__ == "__main__":
    main()
