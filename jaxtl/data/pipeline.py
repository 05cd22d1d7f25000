"""Grain input pipelines: process shard -> shuffle -> decode/augment -> batch -> device.

Each host reads only its own shard of records and builds its part of every global batch;
`jax.make_array_from_process_local_data` joins the parts into one array sharded on the mesh's
'data' axis. The training iterator's state (a position in a deterministic stream) is saved in
every checkpoint, so a resumed run sees exactly the batches it would have seen.

Workers: `data.num_workers` processes per host (-1: one per core available to the process,
`worker_count`), each reading ahead with `READ_THREADS` threads and a buffer of
`READ_AHEAD_BATCHES` batches, so that prepared data (jaxtl.data.prepared) stream without
stalls. Evaluation (`EvalFeed`) keeps its workers between evaluations: a split's batches repeat
pass after pass from one iterator. It starts no more workers than a pass has batches: each
worker process costs seconds to start (it imports JAX and jaxtl), and one with no batch of its
own would only wait.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import multiprocessing.connection
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import grain
import jax
import numpy as np
from grain.experimental import ThreadPrefetchIterDataset

from jaxtl.data.records import DataError, Record
from jaxtl.data.transforms import EvalExample, ImageTransform, TrainExample


@dataclasses.dataclass(frozen=True)
class Layout:
    """How a global batch is split over hosts and devices."""

    sharding: jax.sharding.NamedSharding  # batch dimension on the 'data' axis
    process_index: int
    process_count: int

    @classmethod
    def from_mesh(cls, mesh: jax.sharding.Mesh) -> Layout:
        sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
        return cls(sharding, jax.process_index(), jax.process_count())

    def local_batch_size(self, global_batch: int, what: str) -> int:
        devices = self.sharding.mesh.size
        if global_batch % devices:
            raise DataError(f"{what}={global_batch} must be a multiple of the {devices} "
                            f"devices so every device gets the same number of images")
        return global_batch // self.process_count


def _to_global(layout: Layout):
    def place(batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        return {key: jax.make_array_from_process_local_data(layout.sharding, value)
                for key, value in batch.items()}

    return place


def _exit_with_the_run(worker_index: int, worker_count: int) -> None:
    """Runs in each Grain worker process: the worker exits when the run's process is gone, even
    after kill -9, instead of living on as an orphan (holding the run's output pipes open)."""
    del worker_index, worker_count
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def exit_when_the_parent_ends() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(0)

    threading.Thread(target=exit_when_the_parent_ends, daemon=True).start()


AUTO_WORKERS = -1  # data.num_workers: one worker per core available to the process
READ_THREADS = 4  # threads per process computing batches ahead (Pillow and NumPy drop the GIL)
READ_AHEAD_BATCHES = 8  # batches each process keeps ready (Grain's default of 500 is per element)


def worker_count(num_workers: int) -> int:
    """`data.num_workers` as a number of processes: -1 is the cores this process may use."""
    return len(os.sched_getaffinity(0)) if num_workers == AUTO_WORKERS else num_workers


def _read_ahead(dataset: grain.MapDataset) -> grain.IterDataset:
    return dataset.to_iter_dataset(grain.ReadOptions(num_threads=READ_THREADS,
                                                     prefetch_buffer_size=READ_AHEAD_BATCHES))


# Worker processes send their batches pickled through Grain's queue, not in shared memory:
# Grain leaves the shared memory of batches still in flight when an iterator is closed (an
# evaluation pass, a run's end) unlinked by no one, and Python warns of leaked shared_memory
# objects at exit. A batch is a few MB, so the copy costs little beside decoding it.
NO_SHARED_MEMORY = grain.experimental.DatasetOptions(min_shm_size=2**62)


def _workers(dataset: grain.IterDataset, num_workers: int) -> grain.IterDataset:
    num_workers = worker_count(num_workers)
    if num_workers == 0:
        return dataset
    dataset = grain.experimental.WithOptionsIterDataset(dataset, NO_SHARED_MEMORY)
    return dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers),
                               worker_init_fn=_exit_with_the_run)


def _on_device(dataset: grain.IterDataset, layout: Layout, prefetch: int) -> grain.IterDataset:
    dataset = ThreadPrefetchIterDataset(dataset, prefetch_buffer_size=prefetch)
    return ThreadPrefetchIterDataset(dataset.map(_to_global(layout)),
                                     prefetch_buffer_size=prefetch)


@dataclasses.dataclass(frozen=True)
class TrainStream:
    """An endless-enough stream of training batches for `epochs` passes over the data."""

    dataset: grain.IterDataset
    steps_per_epoch: int
    examples_per_epoch: int  # training images seen per epoch (all hosts)

    def iterator(self, state: dict[str, Any] | None = None) -> grain.DatasetIterator:
        iterator = iter(self.dataset)
        if state is not None:
            iterator.set_state(state)
        return iterator


def train_shard(records: Sequence[Record], process_index: int,
                process_count: int) -> list[Record]:
    """Records p, p + P, ... for host p, cut so that every host has the same number."""
    per_host = len(records) // process_count
    return list(records[process_index::process_count])[:per_host]


def eval_shard(records: Sequence[Record], process_index: int, process_count: int,
               local_batch: int) -> list[tuple[Record | None, int]]:
    """(record, index in split) for host p, padded with (None, -1) to whole batches.

    All hosts get the same number of batches, and every record is on exactly one host.
    """
    per_host = math.ceil(len(records) / process_count)
    padded = max(1, math.ceil(per_host / local_batch)) * local_batch
    indices = range(process_index, len(records), process_count)
    items: list[tuple[Record | None, int]] = [(records[i], i) for i in indices]
    return items + [(None, -1)] * (padded - len(items))


def train_stream(records: Sequence[Record], transform: ImageTransform, *, global_batch: int,
                 epochs: int, seed: int, layout: Layout, num_workers: int, prefetch: int,
                 skip_bad_images: bool = False, example: Any = None) -> TrainStream:
    """Shuffles every epoch anew (seeded), augments, and drops the last partial batch.
    `skip_bad_images`: an unreadable image becomes a stand-in marked `valid` False instead of
    stopping the run (jaxtl.data.transforms.TrainExample). `example`: the Grain RandomMap that
    makes a training example of a record instead of `TrainExample(transform, ...)` (a
    segmentation dataset's random crops, `registry.SegmentationData.crop`)."""
    local_batch = layout.local_batch_size(global_batch, "data.batch_size")
    local = train_shard(records, layout.process_index, layout.process_count)
    steps_per_epoch = len(local) // local_batch
    if steps_per_epoch == 0:
        raise DataError(f"the training split has {len(records)} images, fewer than one batch "
                        f"(data.batch_size={global_batch}); lower the batch size or add data")
    dataset = (grain.MapDataset.source(local)
               .shuffle(seed=seed)
               .repeat(epochs)
               .random_map(example or TrainExample(transform, skip_bad_images), seed=seed + 1)
               .batch(local_batch, drop_remainder=True))
    dataset = _on_device(_workers(_read_ahead(dataset), num_workers), layout, prefetch)
    return TrainStream(dataset, steps_per_epoch, steps_per_epoch * global_batch)


class EvalFeed:
    """Every record of a split exactly once per pass: the last batch is padded with masked-out
    blanks. Each example carries its index in `records`, so results can be checked and
    ordered, and `valid` (False: unreadable, with `skip_bad_images`).

    The passes come from one iterator over the split's batches repeated without end, so Grain's
    worker processes start with the first pass and serve every later one (a run evaluates the
    same split every epoch); a pass that is left unfinished closes the iterator, and the next
    pass starts a new one. `close` stops the workers. `passes`: how many passes at most (None:
    without end; 1 reads nothing beyond the one pass).
    """

    def __init__(self, records: Sequence[Record], transform: ImageTransform, *,
                 global_batch: int, layout: Layout, num_workers: int, prefetch: int,
                 label_shape: tuple[int, ...] = (), skip_bad_images: bool = False,
                 passes: int | None = None):
        local_batch = layout.local_batch_size(global_batch, "eval.batch_size")
        items = eval_shard(records, layout.process_index, layout.process_count, local_batch)
        self.batches_per_pass = len(items) // local_batch
        dataset = (grain.MapDataset.source(items)
                   .map(EvalExample(transform, label_shape, skip_bad_images))
                   .batch(local_batch, drop_remainder=False)
                   .repeat(passes))
        workers = min(worker_count(num_workers), self.batches_per_pass)
        self._dataset = _on_device(_workers(_read_ahead(dataset), workers), layout, prefetch)
        self._iterator: Any = None

    def batches(self) -> Iterator[dict[str, jax.Array]]:
        """One pass over the split."""
        if self._iterator is None:
            self._iterator = iter(self._dataset)
        finished = False
        try:
            for _ in range(self.batches_per_pass):
                yield next(self._iterator)
            finished = True
        finally:
            if not finished:
                self.close()

    def close(self) -> None:
        if self._iterator is not None:
            close(self._iterator)
            self._iterator = None


def eval_batches(records: Sequence[Record], transform: ImageTransform, *, global_batch: int,
                 layout: Layout, num_workers: int, prefetch: int,
                 label_shape: tuple[int, ...] = (),
                 skip_bad_images: bool = False) -> Iterator[dict[str, jax.Array]]:
    """One pass of an `EvalFeed` that is closed after it."""
    feed = EvalFeed(records, transform, global_batch=global_batch, layout=layout,
                    num_workers=num_workers, prefetch=prefetch, label_shape=label_shape,
                    skip_bad_images=skip_bad_images, passes=1)
    try:
        yield from feed.batches()
    finally:
        feed.close()


def close(iterator: Any) -> None:
    """Stops an iterator's Grain worker processes and prefetch threads, if it has any."""
    if hasattr(iterator, "close"):
        iterator.close()
