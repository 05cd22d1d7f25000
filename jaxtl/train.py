"""The training loop: setup, restore or init, train with periodic evaluation, final results.

Reads like a recipe; each section calls one module that does one job: the run is built by
`jaxtl.run` (data, model, optimizer, compiled steps), splits are scored by `jaxtl.scoring`,
checkpoints kept by `jaxtl.checkpoint`, logs by `jaxtl.runlog`, and the run folder's files
named and written by `jaxtl.rundir`.
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from tqdm import tqdm

from jaxtl import __version__, configuration, demo, provenance, rundir
from jaxtl.checkpoint import RunCheckpoints, abstract_like
from jaxtl.data import loading, pipeline, registry
from jaxtl.optim.early_stopping import EarlyStopping
from jaxtl.run import build
from jaxtl.runlog import RunLog
from jaxtl.scoring import score


def summary(metrics: dict[str, Any], names: Sequence[str]) -> str:
    return ", ".join(f"{name} {metrics[name]:.4f}" for name in names
                     if isinstance(metrics.get(name), float))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
    """Trains (or resumes) the configured run and writes results.json; returns the results."""
    started = time.time()
    # --- Setup ------------------------------------------------------------------------------
    notes = demo.apply(config)
    configuration.validate(config)
    workdir = pathlib.Path(workdir).resolve()
    writer = jax.process_index() == 0
    rundir.check_workdir(workdir, config, write=writer)
    is_demo = loading.is_demo(config)
    log = RunLog(workdir, demo=is_demo, enabled=writer)
    for note in notes:
        log.info(note)
    run, state = build(config)
    if writer:
        rundir.write_training_set(workdir, [r.image_id for r in run.splits.train],
                                  [r.patient for r in run.splits.train])
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
    reported = dict.fromkeys([config.eval.best_metric, *registry.get(config.dataset).metrics,
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
            meta["val"] = score(run, state, run.splits.val)
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
        "val": score(run, best_state, run.splits.val, intervals=True,
                     predictions_of=(workdir, "val")),
        "test": (score(run, best_state, run.splits.test, intervals=True,
                       subsets=run.splits.subsets.get("test"), predictions_of=(workdir, "test"))
                 if run.splits.test else None),
        "train_images_per_second": float(np.median(throughput)) if throughput else None,
        "wall_seconds_this_session": time.time() - started,
        "config": config.to_dict(),
    }
    if writer:
        rundir.write_results(workdir, results)
    for split in ("val", "test"):
        if results[split] is not None:
            log.write(step, f"final_{split}", results[split])
            log.info("best checkpoint (epoch %d), %s: %s", results["best_epoch"], split,
                     summary(results[split], reported))
    log.info("results written to %s", workdir / rundir.RESULTS_FILE)
    checkpoints.close()
    log.close()
    return results
