"""Scoring a split: every example once (all hosts), outputs in record order, then metrics.

`outputs` runs any jitted step over a split's evaluation batches and returns what it computed
per example, in the order of the records: the logits for `predict` and `score`, the pooled
features for `jaxtl.commands.features`. Evaluation is exact: the last batch is padded and the padding
masked out, and a split whose examples do not come back exactly once is an error.

`final_results` scores a finished run's checkpoint on validation and test: metrics with
intervals, the predictions saved for curves and paired comparisons, and the operating points
(thresholds chosen on validation, applied to test).
A segmentation task (`SEGMENTATION`) is scored tile by tile instead: jaxtl/evaluators/segmentation.py.
"""

from __future__ import annotations

import collections
import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxtl.workdir import files as rundir
from jaxtl.data import pipeline
from jaxtl.data.records import Record
from jaxtl.data.transforms import ImageTransform
from jaxtl.metrics import task_metrics
from jaxtl.metrics.thresholds import operating_points
from jaxtl.engine.build import Run
from jaxtl.engine.steps import TrainState
from jaxtl.evaluators import segmentation as segmentation_scoring
from jaxtl.core.tasks import SEGMENTATION, Task

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


def predict(run: Run, state: TrainState,
            records: Sequence[Record]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, logits, valid) of every record of a split, in the order of `records`; `valid`
    is False where the image could not be read (its logits mean nothing)."""
    out = outputs(run.eval_step, state, records, run.eval_transform, config=run.config,
                  layout=run.layout, task=run.splits.task, feed=run.eval_feed(records))
    return out["label"], out["logits"], out["valid"].astype(bool)


def score(run: Run, state: TrainState, records: Sequence[Record], *, intervals: bool = False,
          subsets: Mapping[str, Sequence[int]] | None = None) -> dict[str, Any]:
    """The task's metrics on a split; with `intervals`, bootstrap CIs resampled by patient.

    Each of `subsets` (name -> indices into `records`) is also scored on its own, under
    "subsets". Images that could not be read (`data.bad_images=skip`) are left out of every
    metric and listed under "excluded".
    """
    if run.splits.task.kind == SEGMENTATION:  # whole tiles by sliding windows
        return segmentation_scoring.score(run, state, records, intervals=intervals)
    labels, logits, valid = predict(run, state, records)
    return _metrics(run, records, labels, logits, valid, intervals=intervals, subsets=subsets)


def _metrics(run: Run, records: Sequence[Record], labels: np.ndarray, logits: np.ndarray,
             valid: np.ndarray, *, intervals: bool,
             subsets: Mapping[str, Sequence[int]] | None) -> dict[str, Any]:
    groups = [r.patient for r in records]

    def metrics(rows: np.ndarray) -> dict[str, Any]:
        rows = rows[valid[rows]]
        return task_metrics(run.splits.task, labels[rows], logits[rows],
                            [groups[i] for i in rows],
                            bootstrap_samples=run.config.eval.bootstrap_samples if intervals
                            else 0, seed=run.config.eval.bootstrap_seed)

    result = metrics(np.arange(len(records)))
    if subsets:
        result["subsets"] = {name: metrics(np.asarray(rows, np.int64))
                             for name, rows in subsets.items()}
    if not valid.all():
        result["excluded"] = {"count": int((~valid).sum()), "reason": "unreadable image",
                              "image_ids": [r.image_id for r, ok in zip(records, valid) if not ok]}
    return result


def final_results(run: Run, state: TrainState, workdir: pathlib.Path) -> dict[str, Any]:
    """`val` and `test` metrics with intervals (test subsets too), `operating_points` chosen
    on val and applied to test, and the data's `label_policies`; host 0 saves each split's
    predictions (labels, scores, image and patient ids, in record order, without images that
    could not be read) in `workdir`."""
    task = run.splits.task
    if task.kind == SEGMENTATION:
        return segmentation_scoring.final_results(run, state, workdir)
    results: dict[str, Any] = {}
    scored: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split in ("val", "test"):
        records = run.splits.split(split)
        if not records:
            results[split] = None
            continue
        labels, logits, valid = predict(run, state, records)
        kept = np.flatnonzero(valid)
        scored[split] = (labels[kept], task.scores(logits[kept]))
        if jax.process_index() == 0:
            rundir.save_predictions(workdir, split, labels=scored[split][0],
                                    scores=scored[split][1], names=task.names,
                                    image_ids=[records[i].image_id for i in kept],
                                    patients=[records[i].patient for i in kept])
        results[split] = _metrics(run, records, labels, logits, valid, intervals=True,
                                  subsets=run.splits.subsets.get(split))
    results["operating_points"] = (operating_points(task, scored["val"], scored.get("test"))
                                   if "val" in scored else None)
    results["label_policies"] = dict(run.splits.label_policies)
    return results
