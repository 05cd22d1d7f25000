"""Prints, as JSON, one train step's loss and BatchNorm running averages of a one-layer model
under each model.batch_norm_scope, on a batch whose two halves differ; run with two devices.

Used by test_steps_batch_norm_scope.py:
XLA_FLAGS=--xla_force_host_platform_device_count=2 python batch_norm_scopes.py
"""

from __future__ import annotations

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxtl.core import tasks
from jaxtl.data import pipeline
from jaxtl.engine import steps
from jaxtl.models.layers import BATCH_NORM_SCOPES


class NormalisedMeans(nn.Module):
    """Logits: each channel's spatial mean after a BatchNorm (scale 1, offset 0 at first)."""

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, jax.Array]:
        y = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)(x)
        logits = jnp.mean(y, axis=(1, 2))
        return logits, logits


class MeansThroughDense(nn.Module):
    """No BatchNorm: the spatial means through a dense layer (its gradients must be the
    whole batch's under either scope)."""

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, jax.Array]:
        logits = nn.Dense(3)(jnp.mean(x, axis=(1, 2)))
        return logits, logits


def batch() -> dict[str, np.ndarray]:
    """Eight 4x4 images of three channels; the second half shifted and scaled."""
    rng = np.random.default_rng(0)
    images = rng.standard_normal((8, 4, 4, 3)).astype(np.float32)
    images[4:] = images[4:] * 3.0 + 2.0
    return {"image": images, "label": rng.integers(0, 3, 8).astype(np.int32)}


def main() -> None:
    mesh = steps.make_mesh()
    layout = pipeline.Layout.from_mesh(mesh)
    model, tx = NormalisedMeans(), optax.sgd(0.1)
    task = tasks.multiclass(["0", "1", "2"])
    on_device = {key: jax.make_array_from_process_local_data(layout.sharding, value)
                 for key, value in batch().items()}
    results = {"devices": len(jax.devices()),
               "shards": len({s.device for s in on_device["image"].addressable_shards})}
    for scope in BATCH_NORM_SCOPES:
        state = steps.init_state(model, tx, seed=0, image_shape=(4, 4, 3), mesh=mesh)
        step = steps.make_train_step(model, tx, mesh, task=task, batch_norm_scope=scope)
        state, metrics = step(state, on_device)
        stats = state.batch_stats["BatchNorm_0"]
        results[scope] = {"loss": float(metrics["loss"]),
                          "mean": np.asarray(stats["mean"]).tolist(),
                          "var": np.asarray(stats["var"]).tolist()}
        dense = MeansThroughDense()
        state = steps.init_state(dense, tx, seed=0, image_shape=(4, 4, 3), mesh=mesh)
        step = steps.make_train_step(dense, tx, mesh, task=task, batch_norm_scope=scope)
        state, _ = step(state, on_device)
        results[scope]["dense_kernel"] = np.asarray(state.params["Dense_0"]["kernel"]).tolist()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
