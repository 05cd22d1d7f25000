"""Scoring a split: every example once (all hosts), outputs in record order, then metrics.

`outputs` runs any jitted step over a split's evaluation batches and returns what it computed
per example, in the order of the records: the logits for `predict` and `score`, the pooled
features for `jaxtl.features`. Evaluation is exact: the last batch is padded and the padding
masked out, and a split whose examples do not come back exactly once is an error.

`final_results` scores a finished run's checkpoint on validation and test: metrics with
intervals, the predictions saved for curves and paired comparisons, and the operating points
(thresholds chosen on validation, applied to test).
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxtl import rundir
from jaxtl.data import pipeline
from jaxtl.data.records import Record
from jaxtl.data.transforms import ImageTransform
from jaxtl.metrics import task_metrics
from jaxtl.metrics.thresholds import operating_points
from jaxtl.run import Run
from jaxtl.steps import TrainState
from jaxtl.tasks import Task

Step = Callable[[Any, dict[str, jax.Array]], dict[str, jax.Array]]  # -> per-example outputs


def outputs(step: Step, variables: Any, records: Sequence[Record], transform: ImageTransform,
            *, config: ml_collections.ConfigDict, layout: pipeline.Layout,
            task: Task) -> dict[str, np.ndarray]:
    """`step(variables, batch)` over every record once; each output (and the labels) in the
    order of `records`. The step returns its outputs plus the batch's label, index and mask."""
    collected: dict[str, list[np.ndarray]] = {}
    for batch in pipeline.eval_batches(records, transform, global_batch=config.eval.batch_size,
                                       layout=layout, num_workers=config.data.num_workers,
                                       prefetch=config.data.prefetch_batches,
                                       label_shape=task.label_shape):
        for key, value in jax.device_get(step(variables, batch)).items():
            collected.setdefault(key, []).append(np.asarray(value))
    mask = np.concatenate(collected.pop("mask"))
    index = np.concatenate(collected.pop("index"))[mask]
    order = np.argsort(index)
    if not np.array_equal(index[order], np.arange(len(records))):
        raise RuntimeError(f"evaluation scored {len(index)} examples for a split of "
                           f"{len(records)}: every example must be scored exactly once")
    return {key: np.concatenate(values)[mask][order] for key, values in collected.items()}


def predict(run: Run, state: TrainState,
            records: Sequence[Record]) -> tuple[np.ndarray, np.ndarray]:
    """(labels, logits) of every record of a split, in the order of `records`."""
    out = outputs(run.eval_step, state, records, run.eval_transform, config=run.config,
                  layout=run.layout, task=run.splits.task)
    return out["label"], out["logits"]


def score(run: Run, state: TrainState, records: Sequence[Record], *, intervals: bool = False,
          subsets: Mapping[str, Sequence[int]] | None = None) -> dict[str, Any]:
    """The task's metrics on a split; with `intervals`, bootstrap CIs resampled by patient.

    Each of `subsets` (name -> indices into `records`) is also scored on its own, under
    "subsets".
    """
    labels, logits = predict(run, state, records)
    return _metrics(run, records, labels, logits, intervals=intervals, subsets=subsets)


def _metrics(run: Run, records: Sequence[Record], labels: np.ndarray, logits: np.ndarray, *,
             intervals: bool, subsets: Mapping[str, Sequence[int]] | None) -> dict[str, Any]:
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


def final_results(run: Run, state: TrainState, workdir: pathlib.Path) -> dict[str, Any]:
    """`val` and `test` metrics with intervals (test subsets too), `operating_points` chosen
    on val and applied to test, and the data's `label_policies`; host 0 saves each split's
    predictions (labels, scores, image and patient ids, in record order) in `workdir`."""
    task = run.splits.task
    results: dict[str, Any] = {}
    scored: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split in ("val", "test"):
        records = run.splits.split(split)
        if not records:
            results[split] = None
            continue
        labels, logits = predict(run, state, records)
        scored[split] = (labels, task.scores(logits))
        if jax.process_index() == 0:
            rundir.save_predictions(workdir, split, labels=labels, scores=scored[split][1],
                                    names=task.names, image_ids=[r.image_id for r in records],
                                    patients=[r.patient for r in records])
        results[split] = _metrics(run, records, labels, logits, intervals=True,
                                  subsets=run.splits.subsets.get(split))
    results["operating_points"] = (operating_points(task, scored["val"], scored.get("test"))
                                   if "val" in scored else None)
    results["label_policies"] = dict(run.splits.label_policies)
    return results
