"""The training loop: setup, restore or init, train with periodic evaluation, final results.

Reads like a recipe; each section calls one module that does one job: the run is built by
`jaxtl.engine.build` (data, model, optimizer, compiled steps), splits are scored by the task's
evaluator (`jaxtl.evaluators`), checkpoints kept by `jaxtl.workdir.checkpoints`, logs by
`jaxtl.workdir.metrics_log`, and the run folder's files named and written by
`jaxtl.workdir.files`; `jaxtl.core.preemption` says when to stop and save.

What can stop a run, and what it leaves (README "When things go wrong"):
- SIGTERM: a checkpoint at the next step, then `Preempted` (exit 143); the same command resumes.
- a NaN or infinite loss or gradient norm: `NonFiniteError` (exit 3) naming the step and the
  learning rate; every step is checked before anything after it is evaluated or saved, so the
  last checkpoint is the last good one.
- an unreadable image (`data.bad_images=error`): `UnreadableImage` naming it; the run folder
  remembers it (stopped_at.json), so the same command says so at once if it is still bad.
- a full disk or an unwritable run folder: one message; earlier checkpoints are intact.
- kill -9 or a crash: the next run resumes from the latest checkpoint (at most
  `train.checkpoint_every_steps` steps or `train.checkpoint_every_minutes` minutes old).
A resumed run is bitwise the run that was not interrupted: same batches, parameters, results.

With a moving average of the parameters (train.ema_decay > 0) every validation scores the raw
weights and the average (`validation`); eval.select names the weights whose metric selects the
best checkpoint and stops early, and the best checkpoint keeps those weights.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from collections.abc import Collection, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from jaxtl import __version__, evaluators, optim
from jaxtl.config import demo_settings as demo
from jaxtl.config import validation as configuration
from jaxtl.config.base import SELECTED_WEIGHTS
from jaxtl.core import progress as progress_lines
from jaxtl.core import provenance, tasks
from jaxtl.core.errors import DataError, NonFiniteError, Preempted, UnreadableImage
from jaxtl.core.preemption import CheckpointInterval, StopRequest
from jaxtl.data import loading, pipeline
from jaxtl.data.registry import DatasetSpec
from jaxtl.engine import steps, transfer
from jaxtl.engine.build import Run, build, describe_parameters
from jaxtl.metrics import headline
from jaxtl.optim.early_stopping import EarlyStopping
from jaxtl.workdir import files as rundir
from jaxtl.workdir.checkpoints import RunCheckpoints, remove_latest
from jaxtl.workdir.metrics_log import RunLog
from jaxtl.workdir.pretrained import PretrainedInfo


def summary(metrics: dict[str, Any], names: Sequence[str]) -> str:
    return ", ".join(f"{name} {metrics[name]:.4f}" for name in names
                     if isinstance(metrics.get(name), float))


@dataclasses.dataclass
class StepCheck:
    """Checks each train step's loss and gradient norm one step late (so the device is never
    idle waiting for the host), and at once before anything uses the state."""

    run: Run
    skipped_images: int = 0
    _pending: tuple[int, Any] | None = None

    def after(self, step: int, metrics: Any) -> None:
        """Records step `step`'s metrics (device arrays); checks the step before it."""
        self.now()
        self._pending = (step, metrics)

    def now(self) -> None:
        if self._pending is None:
            return
        step, metrics = self._pending
        self._pending = None
        values = jax.device_get({key: metrics[key] for key in
                                 ("finite", "loss", "grad_norm", "skipped_images")})
        self.skipped_images += int(values["skipped_images"])
        if not bool(values["finite"]):
            bad = [f"the {name} is {float(values[key])}" for key, name in
                   (("loss", "loss"), ("grad_norm", "gradient norm"))
                   if not np.isfinite(values[key])]
            raise NonFiniteError(
                f"training diverged at step {step + 1} (epoch "
                f"{(step + 1) / self.run.stream.steps_per_epoch:.2f}, learning rate "
                f"{float(self.run.schedule(step)):.3g}): {' and '.join(bad)}; nothing of this "
                f"step was saved and the latest checkpoint is the last good one: lower "
                f"optim.lr, set optim.clip_grad_norm, or check the data")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, *,
                       set_by_user: Collection[str] = ()) -> dict:
    """Trains (or resumes) the configured run and writes results.json; returns the results.
    `set_by_user`: config keys the user set explicitly, which a demo run must not replace."""
    started = time.time()
    spec = configuration.dataset_spec(config)
    notes = demo.apply(config, set_by_user, spec)
    pretrained, init_notes = transfer.take_preprocessing(config, set_by_user, spec)
    workdir = pathlib.Path(workdir).resolve()
    # The worker count is part of the input pipeline's saved position: fixed when a run starts;
    # an automatic count (-1) resumes with the count the run started with.
    saved_workers = (rundir.saved_setting(workdir, "data.num_workers")
                     if config.data.num_workers == pipeline.AUTO_WORKERS else None)
    config.data.num_workers = (saved_workers if saved_workers is not None
                               else pipeline.worker_count(config.data.num_workers))
    configuration.validate(config, spec)  # once, on the config the run trains with
    optim.resolve_lr(config, set_by_user)  # optim.base_lr's rate into optim.lr (config.json)
    writer = jax.process_index() == 0
    with rundir.locked(workdir, enabled=writer):
        try:
            rundir.check_workdir(workdir, config, write=writer)
        except OSError as error:
            raise rundir.unwritable(workdir, error) from None
        if rundir.is_finished(workdir) and not rundir.has_checkpoints(workdir):
            logging.info("the run in %s has finished (%s); its latest checkpoints were removed, "
                         "so it is not trained again: use a new --workdir for a new run",
                         workdir, rundir.RESULTS_FILE)
            return rundir.read_results(workdir)
        return _train(config, spec, workdir, notes + init_notes, started, writer, pretrained)


def _train(config: ml_collections.ConfigDict, spec: DatasetSpec, workdir: pathlib.Path,
           notes: list[str], started: float, writer: bool,
           pretrained: PretrainedInfo | None) -> dict:
    # --- Setup ------------------------------------------------------------------------------
    is_demo = loading.is_demo(config, spec)
    log = RunLog(workdir, demo=is_demo, enabled=writer)
    for note in notes:
        log.info(note)
    run, state = build(config, spec)
    _recheck_stopped_at(workdir, config, spec, log, writer)
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
    log.info("%s", describe_parameters(run.parameters))
    checkpoints = RunCheckpoints(workdir, keep=config.train.keep_checkpoints,
                                 best_metric=config.eval.best_metric, base=run.base)
    iterator = run.stream.iterator()
    stop = StopRequest()
    try:
        state, stopper, step, skipped, throughput = _loop(run, state, checkpoints, iterator,
                                                          stop, log, workdir)
    except UnreadableImage as error:
        if writer:
            rundir.write_stopped_at(workdir, error)
        raise
    except OSError as error:
        raise rundir.unwritable(workdir, error) from None
    finally:
        pipeline.close(iterator)
        _finish_saving(checkpoints)
        stop.release()

    # --- Final evaluation of the best checkpoint --------------------------------------------
    best_state, best_meta = checkpoints.restore_best(state)
    steps_per_epoch = run.stream.steps_per_epoch
    results = {
        "demo": is_demo,
        "dataset": run.splits.name,
        "jaxtl_version": __version__,
        **provenance.git_commit(),
        **provenance.environment(),
        "best_epoch": best_meta["epoch"],
        "epochs": config.train.epochs,
        "epochs_trained": step // steps_per_epoch,
        "stopped_epoch": stopper.stopped_epoch,  # None: trained all epochs
        "steps": run.total_steps,
        "split_sizes": {name: len(run.splits.split(name)) for name in ("train", "val", "test")},
        "task": tasks.task_record(run.splits.task),
        "optimizer": optim.method_name(config.optim),
        "loss_weights": run.loss_weights,
        # model.init's converted checkpoint (its source, input statistics, resolution); None
        # for a random start or a jaxtl run
        "pretrained": dataclasses.asdict(pretrained) if pretrained else None,
        "parameters": run.parameters,  # trainable, total, optimizer_state_bytes
        **evaluators.for_task(run.splits.task).final_results(run, best_state, workdir),
        "skipped_training_images": skipped,  # image draws left out over all epochs
        "train_images_per_second": float(np.median(throughput)) if throughput else None,
        "wall_seconds_this_session": time.time() - started,
        "config": config.to_dict(),
    }
    if writer:
        rundir.write_results(workdir, results)
    reported = _reported(config, spec)
    for split in ("val", "test"):
        if results[split] is not None:
            log.write(step, f"final_{split}", results[split])
            log.info("best checkpoint (epoch %d), %s: %s", results["best_epoch"], split,
                     headline.line(results[split], reported))
    log.info("results written to %s; its report: python -m jaxtl.report %s",
             workdir / rundir.RESULTS_FILE, workdir)
    run.close_feeds()
    checkpoints.close()
    if writer and not config.train.keep_last_checkpoint:
        freed = remove_latest(workdir)
        log.info("removed the latest checkpoints (%.0f MB; train.keep_last_checkpoint keeps "
                 "them): best/ holds the best model", freed / 1e6)
    log.close()
    return results


def _finish_saving(checkpoints: RunCheckpoints) -> None:
    """Lets a checkpoint being written finish, also when the run stops on an error (a failed
    save is reported by the error that stopped the run, not here)."""
    try:
        checkpoints.wait()
    except Exception:  # noqa: BLE001 - the run is already stopping for its own reason
        pass


def _recheck_stopped_at(workdir: pathlib.Path, config: ml_collections.ConfigDict,
                        spec: DatasetSpec, log: RunLog, writer: bool) -> None:
    """A run that stopped at an unreadable image says so at once if the image is still bad
    and the policy is still `error`, instead of training up to it again."""
    stopped = rundir.read_stopped_at(workdir)
    if stopped is None:
        return
    if config.data.bad_images == "error":
        decoder = spec.decoder(config)
        try:
            decoder.decode(stopped["path"], config.data.resolution)
        except DataError as error:
            raise UnreadableImage(
                f"this run stopped before at the unreadable image {stopped['image_id']} and it "
                f"is still unreadable ({error}): replace the file, or resume with "
                f"--config.data.bad_images=skip to leave it out", stopped["image_id"],
                stopped["path"]) from None
        log.info("the image %s this run stopped at reads now; resuming", stopped["image_id"])
    else:
        log.info("this run stopped at the unreadable image %s before; data.bad_images=skip "
                 "leaves it out", stopped["image_id"])
    if writer:
        rundir.clear_stopped_at(workdir)


def _reported(config: ml_collections.ConfigDict, spec: DatasetSpec) -> list[str]:
    return list(dict.fromkeys([config.eval.best_metric, *spec.metrics, "loss"]))


RAW, EMA = SELECTED_WEIGHTS  # eval.select: the trained weights, their moving average


def validation(run: Run, evaluator: evaluators.Evaluator,
               state: Any) -> dict[str, dict[str, Any]]:
    """The validation metrics of the raw weights and, with train.ema_decay > 0, of their
    moving average (with the raw model's BatchNorm statistics), by weights."""
    scored = {RAW: evaluator.score_split(run, state, run.splits.val)}
    if steps.has_ema(state):
        scored[EMA] = evaluator.score_split(run, steps.ema_weights(state), run.splits.val)
    return scored


def selected_metrics(scored: dict[str, dict[str, Any]], select: str) -> dict[str, Any]:
    """The checkpoint metadata of an evaluation: `val`, the metrics of the weights that
    eval.select names (what selects the best checkpoint and stops early), and `val_<other>`
    for the other weights."""
    return {"val": scored[select],
            **{f"val_{weights}": metrics for weights, metrics in scored.items()
               if weights != select}}


def logged_metrics(scored: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """metrics.jsonl's validation row: the raw weights' metrics as they are, the moving
    average's prefixed `ema_` (ema_kappa, ema_loss, ...)."""
    return {**scored[RAW], **{f"{EMA}_{name}": value
                             for name, value in scored.get(EMA, {}).items()}}


def selected_weights(state: Any, select: str) -> Any:
    """The state whose `params` are the weights eval.select names: what the best checkpoint
    keeps, so the final evaluation and every later use of best/ see them."""
    return steps.ema_weights(state) if select == EMA else state


def _loop(run: Run, state: Any, checkpoints: RunCheckpoints, iterator: Any, stop: StopRequest,
          log: RunLog, workdir: pathlib.Path) -> tuple[Any, EarlyStopping, int, int, list]:
    config = run.config
    stopper = EarlyStopping(config.train.early_stopping_patience,
                            config.train.early_stopping_min_delta)
    check = StepCheck(run)
    evaluator = evaluators.for_task(run.splits.task)
    # --- Restore or start -------------------------------------------------------------------
    if checkpoints.latest_step() is not None:
        state, meta = checkpoints.restore_latest(state, iterator)
        log.info("resumed from step %d (epoch %g) in %s", int(state.step), meta["epoch"],
                 workdir)
        log.truncate_after(int(state.step))
        stopper = EarlyStopping.restore(stopper.patience, stopper.min_delta,
                                        meta["early_stopping"])
        check.skipped_images = meta.get("skipped_training_images", 0)
    step = int(state.step)
    steps_per_epoch = run.stream.steps_per_epoch
    interval = CheckpointInterval(config.train.checkpoint_every_steps,
                                  config.train.checkpoint_every_minutes,
                                  config.train.log_every_steps)

    def meta_now(**extra: Any) -> dict[str, Any]:
        return {"epoch": step / steps_per_epoch, "step": step, "demo": log.demo,
                "early_stopping": stopper.state(),
                "skipped_training_images": check.skipped_images, **extra}

    # --- Train ------------------------------------------------------------------------------
    reported = _reported(config, run.spec)
    progress = progress_lines.bar(run.total_steps, initial=step, unit="step", mininterval=2.0,
                                  disable=jax.process_index() != 0,
                                  desc=("DEMO " if log.demo else "") + "train")
    window_start, window_images = time.time(), 0
    throughput: list[float] = []
    while step < run.total_steps and not stopper.stopped:
        batch = next(iterator)
        state, train_metrics = run.train_step(step)(state, batch)
        check.after(step, train_metrics)
        step += 1
        window_images += config.data.batch_size
        progress.update(1)
        epoch_end = step % steps_per_epoch == 0
        log_now = step % config.train.log_every_steps == 0 or epoch_end
        preempted = stop.reached(step)
        periodic = interval.due(step)
        if log_now or epoch_end or preempted or periodic:
            check.now()  # before the state is logged, evaluated or saved
        if log_now:
            values = {k: float(v) for k, v in jax.device_get(train_metrics).items()
                      if k not in ("finite", "skipped_images")}
            images_per_second = window_images / (time.time() - window_start)
            throughput.append(images_per_second)
            values |= {"lr": float(run.schedule(step - 1)), "epoch": step / steps_per_epoch,
                       "images_per_second": images_per_second,
                       "skipped_images": check.skipped_images}
            log.write(step, "train", values)
            progress.set_postfix(loss=f"{values['loss']:.3f}", img_s=f"{images_per_second:.0f}")
            window_start, window_images = time.time(), 0
        save = periodic or preempted
        meta = meta_now()
        if epoch_end:
            epoch = step // steps_per_epoch
            last = step == run.total_steps
            meta["epoch"] = epoch
            if epoch % config.train.eval_every_epochs == 0 or last:
                scored = validation(run, evaluator, state)
                meta |= selected_metrics(scored, config.eval.select)
                log.write(step, "val", {"epoch": epoch, **logged_metrics(scored)})
                for weights, metrics in scored.items():
                    log.info("epoch %d: val %s%s", epoch, "" if weights == RAW else
                             f"({weights}) ", summary(metrics, reported))
                if checkpoints.save_if_best(step, selected_weights(state, config.eval.select),
                                            meta):
                    log.info("epoch %d is the best so far", epoch)
                if stopper.update(epoch, meta["val"][config.eval.best_metric]):
                    log.info("early stopping after epoch %d: %s has not risen by more than %g "
                             "since epoch %d", epoch, config.eval.best_metric,
                             stopper.min_delta, stopper.best_epoch)
            meta["early_stopping"] = stopper.state()
            save |= (epoch % config.train.checkpoint_every_epochs == 0 or last
                     or stopper.stopped)
            window_start, window_images = time.time(), 0
        if save:
            checkpoints.save_latest(step, state, iterator, meta)
            interval.saved()
        if preempted:
            progress.close()
            log.info("stopped by SIGTERM after step %d: checkpoint saved", step)
            raise Preempted(f"stopped by SIGTERM after step {step} of {run.total_steps}; the "
                            f"checkpoint of step {step} is saved in {workdir}: run the same "
                            f"command to resume")
    progress.close()
    checkpoints.wait()  # a save that failed (a full disk) fails here, before the results
    return state, stopper, step, check.skipped_images, throughput
