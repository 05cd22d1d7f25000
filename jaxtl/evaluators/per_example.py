"""Exact evaluation: a jitted step over every example of a split once (all hosts), its
per-example outputs in record order.

`outputs` runs any jitted step over a split's evaluation batches and returns what it computed
per example, in the order of the records: the logits for the classification evaluator, the
pooled features for `jaxtl.commands.features`, the maps of `jaxtl.explain`. The last batch is
padded and the padding masked out, and a split whose examples do not come back exactly once is
an error.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxtl.core.tasks import Task
from jaxtl.data import pipeline
from jaxtl.data.records import Record
from jaxtl.data.transforms import ImageTransform

Step = Callable[[Any, dict[str, jax.Array]], dict[str, jax.Array]]  # -> per-example outputs


IN_FLIGHT = 4  # evaluation batches dispatched to the device before the oldest is fetched


def outputs(step: Step, variables: Any, records: Sequence[Record], transform: ImageTransform,
            *, config: ml_collections.ConfigDict, layout: pipeline.Layout,
            task: Task, feed: pipeline.EvalFeed | None = None) -> dict[str, np.ndarray]:
    """`step(variables, batch)` over every record once; each output (and the labels) in the
    order of `records`. The step returns its outputs plus the batch's label, index, mask and
    valid (False: an unreadable image left out under `data.bad_images=skip`). `feed`: the
    split's evaluation feed to draw a pass from (one made for this call when None). Up to
    `IN_FLIGHT` batches are on the device at once: the host fetches a batch's outputs while
    later batches compute."""
    collected: dict[str, list[np.ndarray]] = {}
    batches = feed.batches() if feed is not None else pipeline.eval_batches(
        records, transform, global_batch=config.eval.batch_size, layout=layout,
        num_workers=config.data.num_workers, prefetch=config.data.prefetch_batches,
        label_shape=task.label_shape, skip_bad_images=config.data.bad_images == "skip")

    def fetch(computed: dict[str, jax.Array]) -> None:
        for key, value in jax.device_get(computed).items():
            collected.setdefault(key, []).append(np.asarray(value))

    pending: collections.deque = collections.deque()
    for batch in batches:
        pending.append(step(variables, batch))
        if len(pending) > IN_FLIGHT:
            fetch(pending.popleft())
    while pending:
        fetch(pending.popleft())
    mask = np.concatenate(collected.pop("mask"))
    index = np.concatenate(collected.pop("index"))[mask]
    order = np.argsort(index)
    if not np.array_equal(index[order], np.arange(len(records))):
        raise RuntimeError(f"evaluation scored {len(index)} examples for a split of "
                           f"{len(records)}: every example must be scored exactly once")
    return {key: np.concatenate(values)[mask][order] for key, values in collected.items()}
