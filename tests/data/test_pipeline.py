"""Grain pipelines: determinism, resumable state, host shards, exact evaluation."""

from __future__ import annotations

import collections

import jax
import numpy as np
import pytest

from jaxtl.core.errors import DataError
from jaxtl.data import pipeline
from jaxtl.data.eyepacs import reader as eyepacs
from jaxtl.data.transforms import ImageTransform, warp_on_host
from jaxtl.engine import steps

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


def host_normalised(records, transform):
    """The float path: pixels normalised on the host, as the pipeline did before."""
    return np.stack([transform.normalise(transform.pixels(r.path, None)) for r in records])


def test_uint8_pixels_normalised_on_the_device_equal_the_float_path(records, layout):
    transform = ImageTransform(resolution=16, channels=3, mean=(0.485, 0.456, 0.406),
                               std=(0.229, 0.224, 0.225))
    batch = next(pipeline.eval_batches(records[:8], transform, global_batch=8, layout=layout,
                                       num_workers=0, prefetch=1))
    assert batch["image"].dtype == np.uint8  # a quarter of float32's bytes cross to the device
    on_device = jax.jit(transform.normalisation)(batch["image"])
    assert on_device.dtype == np.float32
    np.testing.assert_allclose(np.asarray(on_device), host_normalised(records[:8], transform),
                               rtol=0, atol=1e-6)


def test_augmented_image_files_cross_as_canvases_the_step_warps(records, layout):
    """Crop, flip and rotation of image files travel as a warp beside a uint8 canvas; the
    steps' `normalised` warps then normalises, giving what the host computes for the same
    random draws (`ImageTransform.pixels`, which rounds to uint8: within half a level)."""
    transform = ImageTransform(resolution=16, channels=3, mean=(0.485, 0.456, 0.406),
                               std=(0.229, 0.224, 0.225), augment=("crop", "flip", "rotate"),
                               rotate_degrees=20)
    batch = next(pipeline.train_stream(records[:8], transform, global_batch=8, epochs=1,
                                       seed=3, layout=layout, num_workers=0,
                                       prefetch=1).iterator())
    assert batch["image"].dtype == np.uint8 and batch["warp"].shape == (8, 2, 3)
    on_device = np.asarray(jax.jit(steps.normalised, static_argnums=1)(
        batch, transform.normalisation))
    warps = np.asarray(batch["warp"])
    canvases = np.asarray(batch["image"])
    host = np.stack([transform.normalise(warp_on_host(c, w)) for c, w in zip(canvases, warps)])
    np.testing.assert_allclose(on_device, host, rtol=0, atol=1e-4)
    assert len({w.tobytes() for w in warps}) == 8
    eval_batch = next(pipeline.eval_batches(records[:8], transform, global_batch=8,
                                            layout=layout, num_workers=0, prefetch=1))
    assert "warp" not in eval_batch  # evaluation: the centred square, finished on the host


def test_sixteen_bit_pixels_cross_as_uint16_and_normalise_as_on_the_host(tmp_path, layout):
    from PIL import Image

    from jaxtl.data.decoders import DeepImageDecoder
    from jaxtl.data.records import Record

    rng = np.random.default_rng(0)
    paths = []
    for i in range(4):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 65535, (20, 24), dtype=np.uint16)).save(path)
        paths.append(Record(str(i), str(path), 0, str(i)))
    transform = ImageTransform(resolution=16, channels=1, mean=(0.3,), std=(0.2,),
                               decoder=DeepImageDecoder(1))
    batch = next(pipeline.eval_batches(paths, transform, global_batch=4, layout=layout,
                                       num_workers=0, prefetch=1))
    assert batch["image"].dtype == np.uint16
    wire = np.stack([transform.wire_pixels(r.path, None) for r in paths])
    np.testing.assert_allclose(np.asarray(jax.jit(transform.normalisation)(batch["image"])),
                               transform.normalise(wire), rtol=0, atol=1e-6)
    # rounding the resampled values to 16 bits moves each by at most half a level
    resampled = np.stack([transform.pixels(r.path, None) for r in paths])
    assert np.abs(wire.astype(np.float64) - resampled).max() <= 0.5


def test_the_train_step_normalises_wire_pixels_as_the_host_did(records, layout):
    import optax

    from jaxtl import models
    from jaxtl.core import tasks

    transform = ImageTransform(resolution=16, channels=3, mean=(0.485, 0.456, 0.406),
                               std=(0.229, 0.224, 0.225))
    model = models.create_model("small_cnn", num_outputs=5)
    # the loss compared is the step's, before its update: any optimizer (a config's would
    # import jaxtl.config.base and scikit-learn with it, seconds for nothing here)
    tx = optax.sgd(0.01, momentum=0.9)
    mesh = layout.sharding.mesh
    task = tasks.multiclass([str(grade) for grade in range(5)])
    labels = np.asarray([r.label for r in records[:8]], np.int32)
    wire = {"image": np.stack([transform.wire_pixels(r.path, None) for r in records[:8]]),
            "label": labels}
    floats = {"image": host_normalised(records[:8], transform), "label": labels}
    losses = []
    for batch, normalisation in ((wire, transform.normalisation), (floats, None)):
        state = steps.init_state(model, tx, seed=0, image_shape=(16, 16, 3), mesh=mesh)
        step = steps.make_train_step(model, tx, mesh, task=task, normalisation=normalisation)
        _, metrics = step(state, {k: jax.make_array_from_process_local_data(layout.sharding, v)
                                  for k, v in batch.items()})
        losses.append(float(metrics["loss"]))
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)


def test_an_evaluation_feed_keeps_its_workers_from_pass_to_pass(records, layout):
    import multiprocessing

    feed = pipeline.EvalFeed(records[:10], TRANSFORM, global_batch=4, layout=layout,
                             num_workers=1, prefetch=1)
    passes, workers = [], []
    for _ in range(2):
        batches = [jax.device_get(b) for b in feed.batches()]
        passes.append(batches)
        workers.append({p.pid for p in multiprocessing.active_children()})
    assert len(passes[0]) == feed.batches_per_pass == 3
    assert workers[0] and workers[0] == workers[1]  # the same worker processes served both
    for first, second in zip(*passes):
        for key in first:
            np.testing.assert_array_equal(first[key], second[key])
    assert sorted(np.concatenate([b["index"][b["mask"]] for b in passes[1]])) == list(range(10))
    feed.close()
    assert not {p.pid for p in multiprocessing.active_children()} & workers[0]


def test_an_evaluation_feed_starts_no_more_workers_than_a_pass_has_batches(records, layout,
                                                                           monkeypatch):
    import multiprocessing.process

    started = []
    start = multiprocessing.process.BaseProcess.start

    def counted(process):
        started.append(process)
        start(process)

    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", counted)
    feed = pipeline.EvalFeed(records[:4], TRANSFORM, global_batch=4, layout=layout,
                             num_workers=2, prefetch=1)
    (batch,) = [jax.device_get(b) for b in feed.batches()]
    feed.close()
    assert feed.batches_per_pass == 1 and len(started) == 1, started
    assert sorted(batch["index"][batch["mask"]]) == [0, 1, 2, 3]


def test_workers_default_to_the_cores_available():
    import os

    from jaxtl.config.base import base_config

    assert base_config("eyepacs").data.num_workers == pipeline.AUTO_WORKERS
    assert pipeline.worker_count(pipeline.AUTO_WORKERS) == len(os.sched_getaffinity(0))
    assert pipeline.worker_count(3) == 3
