"""The evaluator of classification tasks (multiclass and multilabel): one prediction per image.

`ClassificationEvaluator.score_split` predicts every example of a split once (all hosts, in
record order: `jaxtl.evaluators.per_example.outputs`) and computes the task's metrics
(`jaxtl.metrics.task_metrics`). `final_results` scores a finished run's checkpoint on
validation and test: metrics with intervals, the predictions saved for curves and paired
comparisons, the operating points (thresholds chosen on validation, applied to test), and,
with `eval.temperature_scaling`, post-hoc temperature scaling (`jaxtl.metrics.temperature`):
temperatures fitted on validation, the calibration metrics of both splits after scaling.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from jaxtl.core.tasks import KINDS
from jaxtl.data.records import Record
from jaxtl.engine.build import Run
from jaxtl.engine.steps import TrainState
from jaxtl.evaluators.per_example import outputs
from jaxtl.metrics import task_metrics, temperature
from jaxtl.metrics.calibration import task_brier
from jaxtl.metrics.thresholds import operating_points
from jaxtl.workdir import files as rundir


def predict(run: Run, state: TrainState,
            records: Sequence[Record]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, logits, valid) of every record of a split, in the order of `records`; `valid`
    is False where the image could not be read (its logits mean nothing)."""
    out = outputs(run.eval_step, state, records, run.eval_transform, config=run.config,
                  layout=run.layout, task=run.splits.task, feed=run.eval_feed(records))
    return out["label"], out["logits"], out["valid"].astype(bool)


def _metrics(run: Run, records: Sequence[Record], labels: np.ndarray, logits: np.ndarray,
             valid: np.ndarray, *, intervals: bool,
             subsets: Mapping[str, Sequence[int]] | None) -> dict[str, Any]:
    """The metrics of `score_split` from the predictions; each of `subsets` (name -> indices
    into `records`) is also scored on its own, under "subsets"."""
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


class ClassificationEvaluator:
    """Scores multiclass and multilabel tasks."""

    kinds = KINDS

    def score_split(self, run: Run, state: TrainState, records: Sequence[Record], *,
                    intervals: bool = False) -> dict[str, Any]:
        """The task's metrics on a split; with `intervals`, bootstrap CIs resampled by
        patient. Images that could not be read (`data.bad_images=skip`) are left out of every
        metric and listed under "excluded"."""
        labels, logits, valid = predict(run, state, records)
        return _metrics(run, records, labels, logits, valid, intervals=intervals, subsets=None)

    def final_results(self, run: Run, state: TrainState,
                      workdir: pathlib.Path) -> dict[str, Any]:
        """`val` and `test` metrics with intervals (test subsets too) and the Brier score,
        `operating_points` chosen on val and applied to test, the data's `label_policies`;
        with `eval.temperature_scaling`, `calibration` (the temperatures fitted on val) and
        each split's `calibrated_*` metrics after scaling. Host 0 saves each split's
        predictions (labels, scores, image and patient ids, in record order, without images
        that could not be read) in `workdir`; the scores are never rescaled."""
        task = run.splits.task
        results: dict[str, Any] = {}
        scored: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        kept_logits: dict[str, np.ndarray] = {}
        for split in ("val", "test"):
            records = run.splits.split(split)
            if not records:
                results[split] = None
                continue
            labels, logits, valid = predict(run, state, records)
            kept = np.flatnonzero(valid)
            kept_logits[split] = logits[kept]
            scored[split] = (labels[kept], task.scores(logits[kept]))
            if jax.process_index() == 0:
                rundir.save_predictions(workdir, split, labels=scored[split][0],
                                        scores=scored[split][1], names=task.names,
                                        image_ids=[records[i].image_id for i in kept],
                                        patients=[records[i].patient for i in kept])
            results[split] = _metrics(run, records, labels, logits, valid, intervals=True,
                                      subsets=run.splits.subsets.get(split))
            results[split] |= task_brier(task, *scored[split])
        results["operating_points"] = (
            operating_points(task, scored["val"], scored.get("test")) if "val" in scored
            else None)
        results["calibration"] = None
        if run.config.eval.temperature_scaling and "val" in scored:
            temperatures = temperature.fit(task, scored["val"][0], kept_logits["val"])
            results["calibration"] = temperature.record(task, temperatures, fitted_on="val")
            for split, logits in kept_logits.items():
                results[split] |= temperature.calibrated(task, scored[split][0], logits,
                                                         temperatures)
        results["label_policies"] = dict(run.splits.label_policies)
        return results
