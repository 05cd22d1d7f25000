"""Grain pipelines: determinism, resumable state, host shards, exact evaluation."""

from __future__ import annotations

import collections

import jax
import numpy as np
import pytest

from jaxtl import steps
from jaxtl.data import pipeline
from jaxtl.data.eyepacs import reader as eyepacs
from jaxtl.data.transforms import ImageTransform
from jaxtl.errors import DataError

TRANSFORM = ImageTransform(resolution=16, channels=3, mean=(0.5,) * 3, std=(0.25,) * 3,
                           augment=("crop", "flip"))


@pytest.fixture
def records(eyepacs_root):
    return eyepacs.read_labels(eyepacs_root)


@pytest.fixture
def layout():
    return pipeline.Layout.from_mesh(steps.make_mesh())


def stream(records, layout, seed=0, workers=0):
    return pipeline.train_stream(records, TRANSFORM, global_batch=4, epochs=3, seed=seed,
                                 layout=layout, num_workers=workers, prefetch=2)


def take(iterator, n):
    return [jax.device_get(next(iterator)) for _ in range(n)]


def test_same_seed_same_batches_other_seed_other_batches(records, layout):
    a = take(stream(records, layout).iterator(), 4)
    b = take(stream(records, layout).iterator(), 4)
    c = take(stream(records, layout, seed=1).iterator(), 4)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["image"], y["image"])
        np.testing.assert_array_equal(x["label"], y["label"])
    assert any(not np.array_equal(x["image"], z["image"]) for x, z in zip(a, c))


def test_worker_processes_give_the_same_batches(records, layout):
    inline = take(stream(records, layout).iterator(), 3)
    iterator = stream(records, layout, workers=2).iterator()
    workers = take(iterator, 3)
    iterator.close()
    for x, y in zip(inline, workers):
        np.testing.assert_array_equal(x["image"], y["image"])


def test_each_epoch_visits_every_image_once_in_a_new_order(records, layout):
    s = stream(records, layout)
    assert s.steps_per_epoch == len(records) // 4 == 15
    iterator = s.iterator()
    epochs = [np.concatenate([b["label"] for b in take(iterator, 15)]) for _ in range(2)]
    expected = collections.Counter(r.label for r in records)
    assert collections.Counter(epochs[0].tolist()) == expected
    assert collections.Counter(epochs[1].tolist()) == expected


def test_restored_state_continues_the_stream_exactly(records, layout):
    s = stream(records, layout)
    iterator = s.iterator()
    take(iterator, 5)
    state = iterator.get_state()
    expected = take(iterator, 3)
    resumed = take(s.iterator(state), 3)
    for x, y in zip(expected, resumed):
        np.testing.assert_array_equal(x["image"], y["image"])


def test_batch_is_one_array_sharded_on_the_data_axis(records, layout):
    batch = next(stream(records, layout).iterator())
    assert batch["image"].shape == (4, 16, 16, 3)
    assert batch["image"].sharding.spec == jax.sharding.PartitionSpec("data")


def test_host_shards_are_disjoint_equal_and_cover_the_split():
    items = list(range(103))
    shards = [pipeline.train_shard(items, p, 4) for p in range(4)]
    assert {len(s) for s in shards} == {25}
    assert len(set().union(*map(set, shards))) == 100
    eval_shards = [pipeline.eval_shard(items, p, 4, local_batch=8) for p in range(4)]
    assert {len(s) for s in eval_shards} == {32}
    real = sorted(i for shard in eval_shards for record, i in shard if record is not None)
    assert real == items


@pytest.mark.parametrize("batch", [4, 7, 64])
def test_evaluation_scores_every_example_exactly_once(records, layout, batch):
    subset = records[:27]  # not a multiple of any batch size used here
    seen, padded = [], 0
    for b in pipeline.eval_batches(subset, TRANSFORM, global_batch=batch, layout=layout,
                                   num_workers=0, prefetch=2):
        b = jax.device_get(b)
        assert b["image"].shape[0] == batch
        seen += b["index"][b["mask"]].tolist()
        padded += int((~b["mask"]).sum())
        assert np.all(b["index"][~b["mask"]] == -1)
    assert sorted(seen) == list(range(27))
    assert padded == -27 % batch


def test_too_few_images_for_one_batch_is_a_clear_error(records, layout):
    with pytest.raises(DataError, match="fewer than one batch"):
        pipeline.train_stream(records[:3], TRANSFORM, global_batch=4, epochs=1, seed=0,
                              layout=layout, num_workers=0, prefetch=1)
