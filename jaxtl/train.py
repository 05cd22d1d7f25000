"""The training loop: setup, restore or init, train with periodic evaluation, final results.

Reads like a recipe; each section calls one module that does one job:
data (`jaxtl.data`), model (`jaxtl.models`), optimizer (`jaxtl.optim`), steps (`jaxtl.steps`),
evaluation (`jaxtl.evaluation`), checkpoints (`jaxtl.checkpoint`), logs (`jaxtl.runlog`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from tqdm import tqdm

from jaxtl import __version__, configuration, demo, models, optim, provenance, steps, transfer
from jaxtl.checkpoint import LATEST_DIR, RunCheckpoints, abstract_like
from jaxtl.data import datasets, pipeline, prepare
from jaxtl.data.records import DatasetSplits, Record
from jaxtl.data.transforms import ImageTransform
from jaxtl.errors import WorkdirConflict
from jaxtl.evaluation.metrics import task_metrics
from jaxtl.optim.early_stopping import EarlyStopping
from jaxtl.runlog import RunLog

CONFIG_FILE = "config.json"
RESULTS_FILE = "results.json"
TRAIN_IMAGES_FILE = "train_images.csv"  # the training images (and patients) this run used
PREDICTIONS_FILE = "predictions_{split}.npz"  # labels and scores of the best checkpoint
# Settings that may change when a run is resumed: they do not change what is computed.
RESUMABLE_CHANGES = ("data.num_workers", "data.prefetch_batches", "data.cache_dir",
                     "train.log_every_steps")


@dataclasses.dataclass
class Run:
    """Everything built from the config that the loop needs."""

    config: ml_collections.ConfigDict
    splits: DatasetSplits
    mesh: jax.sharding.Mesh
    layout: pipeline.Layout
    model: Any
    plan: optim.FinetunePlan  # which backbone stages train from which step
    train_step: Any  # step number -> the compiled train step (frozen stages differ by phase)
    eval_step: Any
    schedule: Any
    stream: pipeline.TrainStream
    eval_transform: ImageTransform
    total_steps: int


def image_transform(config: ml_collections.ConfigDict, channels: int,
                    augment: bool) -> ImageTransform:
    """The per-image transform, decoding with the dataset's decoder (`DatasetSpec.decoder`)."""
    return ImageTransform(resolution=config.data.resolution, channels=channels,
                          mean=tuple(config.data.mean), std=tuple(config.data.std),
                          augment=configuration.parse_augment(config.data.augment) if augment
                          else (),
                          crop_scale_min=config.data.crop_scale_min,
                          rotate_degrees=config.data.rotate_degrees,
                          decoder=datasets.get(config.dataset).decoder(config))


def build(config: ml_collections.ConfigDict) -> tuple[Run, Any]:
    """Data, model, optimizer and compiled steps; returns the run and a fresh state."""
    splits = prepare.load_splits(config)
    channels = config.data.channels
    mesh = steps.make_mesh()
    layout = pipeline.Layout.from_mesh(mesh)
    stream = pipeline.train_stream(
        splits.train, image_transform(config, channels, augment=True),
        global_batch=config.data.batch_size, epochs=config.train.epochs,
        seed=config.train.seed, layout=layout, num_workers=config.data.num_workers,
        prefetch=config.data.prefetch_batches)
    total_steps = stream.steps_per_epoch * config.train.epochs
    optimizer = optim.make_optimizer(config, stream.steps_per_epoch, total_steps)
    tx, schedule = optimizer.tx, optimizer.schedule
    model = models.create_model(config.model.arch, num_outputs=splits.task.num_outputs,
                                head=config.model.head, dropout=config.model.dropout,
                                dtype=config.model.dtype)
    image_shape = (config.data.resolution, config.data.resolution, channels)
    state = steps.init_state(model, tx, seed=config.train.seed, image_shape=image_shape,
                             mesh=mesh)
    if config.model.init:
        state = steps.with_variables(state, tx, transfer.load_into(
            config.model.init, {"params": state.params, "batch_stats": state.batch_stats},
            in_channels=channels), mesh)
    compile_step = functools.cache(lambda frozen: steps.make_train_step(
        model, tx, mesh, task=splits.task, label_smoothing=config.train.label_smoothing,
        frozen=frozen))
    run = Run(config=config, splits=splits, mesh=mesh, layout=layout, model=model,
              plan=optimizer.plan,
              train_step=lambda step: compile_step(optimizer.plan.frozen_at(step)),
              eval_step=steps.make_eval_step(model, mesh), schedule=schedule, stream=stream,
              eval_transform=image_transform(config, channels, augment=False),
              total_steps=total_steps)
    return run, state


def predict(run: Run, state: steps.TrainState,
            records: Sequence[Record]) -> tuple[np.ndarray, np.ndarray]:
    """(labels, logits) of every record of a split, scored exactly once (all hosts), in the
    order of `records`."""
    outputs: dict[str, list[np.ndarray]] = {"logits": [], "label": [], "index": [], "mask": []}
    for batch in pipeline.eval_batches(records, run.eval_transform,
                                       global_batch=run.config.eval.batch_size,
                                       layout=run.layout,
                                       num_workers=run.config.data.num_workers,
                                       prefetch=run.config.data.prefetch_batches,
                                       label_shape=run.splits.task.label_shape):
        for key, value in jax.device_get(run.eval_step(state, batch)).items():
            outputs[key].append(np.asarray(value))
    mask = np.concatenate(outputs["mask"])
    index = np.concatenate(outputs["index"])[mask]
    order = np.argsort(index)
    if not np.array_equal(index[order], np.arange(len(records))):
        raise RuntimeError(f"evaluation scored {len(index)} examples for a split of "
                           f"{len(records)}: every example must be scored exactly once")
    logits = np.concatenate(outputs["logits"])[mask][order]
    labels = np.concatenate(outputs["label"])[mask][order]
    return labels, logits


def evaluate(run: Run, state: steps.TrainState, records: Sequence[Record], *,
             intervals: bool = False,
             subsets: Mapping[str, Sequence[int]] | None = None,
             predictions_file: pathlib.Path | None = None) -> dict[str, Any]:
    """The task's metrics on a split; with `intervals`, bootstrap CIs resampled by patient.

    Each of `subsets` (name -> indices into `records`) is also scored on its own, under
    "subsets". With `predictions_file`, host 0 also saves the labels and the task's scores in
    record order (for ROC and precision-recall curves).
    """
    labels, logits = predict(run, state, records)
    if predictions_file is not None and jax.process_index() == 0:
        np.savez_compressed(predictions_file, labels=labels,
                            scores=run.splits.task.scores(logits).astype(np.float32),
                            names=np.array(run.splits.task.names))
    groups = [r.patient for r in records]

    def metrics(rows: np.ndarray) -> dict[str, Any]:
        return task_metrics(run.splits.task, labels[rows], logits[rows],
                            [groups[i] for i in rows],
                            bootstrap_samples=run.config.eval.bootstrap_samples if intervals
                            else 0, seed=run.config.eval.bootstrap_seed)

    result = metrics(np.arange(len(records)))
    if subsets:
        result["subsets"] = {name: metrics(np.asarray(rows, np.int64))
                             for name, rows in subsets.items()}
    return result


def write_training_set(workdir: pathlib.Path, records: Sequence[Record]) -> None:
    """The image and patient ids of the training set (after the per-class cap)."""
    lines = ["image_id,patient"] + [f"{r.image_id},{r.patient}" for r in records]
    (workdir / TRAIN_IMAGES_FILE).write_text("\n".join(lines) + "\n")


def summary(metrics: dict[str, Any], names: Sequence[str]) -> str:
    return ", ".join(f"{name} {metrics[name]:.4f}" for name in names
                     if isinstance(metrics.get(name), float))


def check_workdir(workdir: pathlib.Path, config: ml_collections.ConfigDict) -> None:
    """Writes config.json for a new run; a run with checkpoints must keep its config."""
    path = workdir / CONFIG_FILE
    current = dict(configuration.flatten(json.loads(configuration.to_json(config))))
    has_checkpoints = any(p.name.isdigit() for p in (workdir / LATEST_DIR).glob("*"))
    if not path.exists() or not has_checkpoints:
        if jax.process_index() == 0:
            workdir.mkdir(parents=True, exist_ok=True)
            path.write_text(configuration.to_json(config))
        return
    saved = dict(configuration.flatten(json.loads(path.read_text())))
    changed = [f"{key}: {saved.get(key)!r} -> {current.get(key)!r}"
               for key in sorted(set(saved) | set(current))
               if saved.get(key) != current.get(key) and key not in RESUMABLE_CHANGES]
    if changed:
        raise WorkdirConflict(
            f"{workdir} holds a run with a different config ({'; '.join(changed)}); "
            f"use a new --workdir, or delete this one to start over")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
    """Trains (or resumes) the configured run and writes results.json; returns the results."""
    started = time.time()
    # --- Setup ------------------------------------------------------------------------------
    notes = demo.apply(config)
    configuration.validate(config)
    workdir = pathlib.Path(workdir).resolve()
    check_workdir(workdir, config)
    is_demo = not config.data.root
    log = RunLog(workdir, demo=is_demo, enabled=jax.process_index() == 0)
    for note in notes:
        log.info(note)
    run, state = build(config)
    if jax.process_index() == 0:
        write_training_set(workdir, run.splits.train)
    log.info("%s: %d train / %d val / %d test images, %s; %s on %d %s device(s), "
             "%d steps per epoch", run.splits.name, len(run.splits.train),
             len(run.splits.val), len(run.splits.test), run.splits.task.describe(),
             config.model.arch, run.mesh.size, jax.devices()[0].platform,
             run.stream.steps_per_epoch)
    if not run.plan.uniform:
        log.info("fine-tuning (%s): %s", config.finetune.strategy,
                 run.plan.describe(run.stream.steps_per_epoch))
    checkpoints = RunCheckpoints(workdir, keep=config.train.keep_checkpoints,
                                 best_metric=config.eval.best_metric)
    iterator = run.stream.iterator()
    stopper = EarlyStopping(config.train.early_stopping_patience,
                            config.train.early_stopping_min_delta)

    # --- Restore or start -------------------------------------------------------------------
    if checkpoints.latest_step() is not None:
        state, meta = checkpoints.restore_latest(abstract_like(state), iterator)
        log.info("resumed from step %d (epoch %d) in %s", int(state.step), meta["epoch"],
                 workdir)
        log.truncate_after(int(state.step))
        stopper = EarlyStopping.restore(stopper.patience, stopper.min_delta,
                                        meta["early_stopping"])
    step = int(state.step)
    steps_per_epoch = run.stream.steps_per_epoch

    # --- Train ------------------------------------------------------------------------------
    reported = dict.fromkeys([config.eval.best_metric, *datasets.get(config.dataset).metrics,
                              "loss"])
    progress = tqdm(total=run.total_steps, initial=step, unit="step", mininterval=2.0,
                    disable=jax.process_index() != 0,
                    desc=("DEMO " if is_demo else "") + "train")
    window_start, window_images = time.time(), 0
    throughput: list[float] = []
    while step < run.total_steps and not stopper.stopped:
        batch = next(iterator)
        state, train_metrics = run.train_step(step)(state, batch)
        step += 1
        window_images += config.data.batch_size
        progress.update(1)
        if step % config.train.log_every_steps == 0 or step % steps_per_epoch == 0:
            values = {k: float(v) for k, v in jax.device_get(train_metrics).items()}
            images_per_second = window_images / (time.time() - window_start)
            throughput.append(images_per_second)
            values |= {"lr": float(run.schedule(step - 1)), "epoch": step / steps_per_epoch,
                       "images_per_second": images_per_second}
            log.write(step, "train", values)
            progress.set_postfix(loss=f"{values['loss']:.3f}", img_s=f"{images_per_second:.0f}")
            window_start, window_images = time.time(), 0
        if step % steps_per_epoch:
            continue
        epoch = step // steps_per_epoch
        last = step == run.total_steps
        meta: dict[str, Any] = {"epoch": epoch, "step": step, "demo": is_demo}
        if epoch % config.train.eval_every_epochs == 0 or last:
            meta["val"] = evaluate(run, state, run.splits.val)
            log.write(step, "val", {"epoch": epoch, **meta["val"]})
            log.info("epoch %d: val %s", epoch, summary(meta["val"], reported))
            if checkpoints.save_if_best(step, state, meta):
                log.info("epoch %d is the best so far", epoch)
            if stopper.update(epoch, meta["val"][config.eval.best_metric]):
                log.info("early stopping after epoch %d: %s has not risen by more than %g "
                         "since epoch %d", epoch, config.eval.best_metric, stopper.min_delta,
                         stopper.best_epoch)
        meta["early_stopping"] = stopper.state()
        if epoch % config.train.checkpoint_every_epochs == 0 or last or stopper.stopped:
            checkpoints.save_latest(step, state, iterator, meta)
        window_start, window_images = time.time(), 0
    progress.close()
    pipeline.close(iterator)
    checkpoints.wait()

    # --- Final evaluation of the best checkpoint --------------------------------------------
    best_state, best_meta = checkpoints.restore_best(abstract_like(state))
    results = {
        "demo": is_demo,
        "dataset": run.splits.name,
        "jaxtl_version": __version__,
        **provenance.git_commit(),
        "best_epoch": best_meta["epoch"],
        "epochs": config.train.epochs,
        "epochs_trained": step // steps_per_epoch,
        "stopped_epoch": stopper.stopped_epoch,  # None: trained all epochs
        "steps": run.total_steps,
        "split_sizes": {name: len(run.splits.split(name)) for name in ("train", "val", "test")},
        "task": {"kind": run.splits.task.kind, "names": list(run.splits.task.names),
                 "three_way": list(run.splits.task.three_way),
                 "parents": list(run.splits.task.parents)},
        "val": evaluate(run, best_state, run.splits.val, intervals=True,
                        predictions_file=workdir / PREDICTIONS_FILE.format(split="val")),
        "test": (evaluate(run, best_state, run.splits.test, intervals=True,
                          subsets=run.splits.subsets.get("test"),
                          predictions_file=workdir / PREDICTIONS_FILE.format(split="test"))
                 if run.splits.test else None),
        "train_images_per_second": float(np.median(throughput)) if throughput else None,
        "wall_seconds_this_session": time.time() - started,
        "config": config.to_dict(),
    }
    if jax.process_index() == 0:
        (workdir / RESULTS_FILE).write_text(json.dumps(results, indent=2, default=list))
    for split in ("val", "test"):
        if results[split] is not None:
            log.write(step, f"final_{split}", results[split])
            log.info("best checkpoint (epoch %d), %s: %s", results["best_epoch"], split,
                     summary(results[split], reported))
    log.info("results written to %s", workdir / RESULTS_FILE)
    checkpoints.close()
    log.close()
    return results
