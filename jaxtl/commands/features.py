"""Pooled backbone features of every split, and a logistic-regression probe on them.

    python -m jaxtl.commands.features --config configs/eyepacs.py --workdir runs/features \
        [--config.model.init=runs/pretrained]

The backbone is `model.arch`, with the variables of `model.init` (a jaxtl workdir) or, when that
is empty, randomly initialised with `train.seed`. Images go through the evaluation transform
(no augmentation) and the backbone in inference mode. Writes to the workdir:

  features/<split>.npz   features (N, D) float32, labels, image_id, patient; in split order
  results.json           the probe's val and test metrics in the format of a training run
                         (bootstrap intervals included), plus the probe's settings
  config.json

The probe is scikit-learn's LogisticRegression on standardised features (mean and scale from
the training split), one model per task: multinomial for a multiclass task; for a multilabel
task one binary model per label (three-way labels: one multinomial over negative / positive /
uncertain), fitted on the entries the task's loss counts (not masked; for a hierarchical task,
where the parent is positive). Its inverse regularisation C is chosen among `probe.c_values` by
the validation `eval.best_metric`; the logits passed to the metrics are its decision values.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
import warnings
from collections.abc import Collection, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import flags, logging
from jax.sharding import NamedSharding, PartitionSpec
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from jaxtl import __version__, models
from jaxtl.commands import cli
from jaxtl.config import demo_settings as demo
from jaxtl.config import validation as configuration
from jaxtl.core import atomic, provenance
from jaxtl.core.tasks import NEGATIVE, POSITIVE, Task, task_record
from jaxtl.data import loading, pipeline
from jaxtl.data.records import SPLITS, DatasetSplits, Record
from jaxtl.engine import steps
from jaxtl.engine.build import build_model, image_transform
from jaxtl.evaluators.per_example import outputs
from jaxtl.metrics import task_metrics
from jaxtl.workdir import files as rundir
from jaxtl.workdir.metrics_log import RunLog

ABSENT_CLASS_LOGIT = -30.0  # a class the training entries of a label never show


@dataclasses.dataclass(frozen=True)
class SplitFeatures:
    features: np.ndarray  # (N, D) float32
    labels: np.ndarray  # (N,) or (N, L) int32


# --- extraction ---------------------------------------------------------------------------------
def extract(config: ml_collections.ConfigDict, splits: DatasetSplits,
            log: RunLog) -> tuple[dict[str, SplitFeatures], DatasetSplits]:
    """Pooled features of every record of every split, in the order of the records, and the
    splits they belong to: without the images that could not be read (`data.bad_images=skip`;
    counted in the log)."""
    mesh = steps.make_mesh()
    layout = pipeline.Layout.from_mesh(mesh)
    model, variables = build_model(config, splits.task, mesh)
    variables = jax.device_put(variables, steps.replicated(mesh))
    data = NamedSharding(mesh, PartitionSpec("data"))

    transform = image_transform(config, augment=False)

    def features_step(variables: dict[str, Any], batch: dict[str, jax.Array]) -> dict:
        _, out = model.apply(variables, steps.normalised(batch, transform.normalisation),
                             train=False)
        return {"features": out[models.PRE_LOGITS], "label": batch["label"],
                "index": batch["index"], "mask": batch["mask"], "valid": batch["valid"]}

    step = jax.jit(features_step, in_shardings=(steps.replicated(mesh), data),
                   out_shardings=steps.replicated(mesh))
    result, readable = {}, {}
    for split in SPLITS:
        records = splits.split(split)
        readable[split] = records
        if not records:
            continue
        started = time.time()
        out = outputs(step, variables, records, transform, config=config, layout=layout,
                      task=splits.task)
        rows = np.flatnonzero(out["valid"])
        if len(rows) < len(records):
            log.info("%s: %d unreadable images left out (data.bad_images=skip)", split,
                     len(records) - len(rows))
            readable[split] = [records[i] for i in rows]
        result[split] = SplitFeatures(out["features"][rows].astype(np.float32),
                                      out["label"][rows])
        log.info("%s: %d x %d features in %.1f s", split, *result[split].features.shape,
                 time.time() - started)
    return result, dataclasses.replace(splits, **readable)


def save(directory: pathlib.Path, split: str, features: SplitFeatures,
         records: Sequence[Record]) -> pathlib.Path:
    return atomic.save_npz(directory / f"{split}.npz", features=features.features,
                           labels=features.labels,
                           image_id=np.array([r.image_id for r in records]),
                           patient=np.array([r.patient for r in records]))


# --- the probe ---------------------------------------------------------------------------------
@dataclasses.dataclass
class Probe:
    """Fitted logistic regressions (or constant logits) for each output group of a task."""

    task: Task
    scaler: StandardScaler
    parts: list[tuple[slice, Any]]  # (columns of the logits, model or constant logits)

    def logits(self, features: np.ndarray) -> np.ndarray:
        x = self.scaler.transform(features)
        out = np.zeros((len(features), self.task.num_outputs))
        for columns, part in self.parts:
            out[:, columns] = _part_logits(part, x, columns.stop - columns.start)
        return out


def _part_logits(part: Any, x: np.ndarray, width: int) -> np.ndarray:
    if isinstance(part, np.ndarray):  # constant logits
        return np.broadcast_to(part, (len(x), width))
    model, classes = part
    decision = model.decision_function(x)
    if width == 1:  # a binary label: the logit of positive (classes are 0 and 1)
        return decision[:, None]
    if decision.ndim == 1:  # two of the classes seen in training: their logit difference
        decision = np.stack([-decision / 2, decision / 2], axis=1)
    full = np.full((len(x), width), ABSENT_CLASS_LOGIT)
    full[:, classes] = decision
    return full


def _constant(counts: np.ndarray, width: int) -> np.ndarray:
    """Logits of the smoothed class frequencies, for a label with one class in training."""
    log_prior = np.log((counts + 0.5) / (counts.sum() + 0.5 * len(counts)))
    return log_prior if width > 1 else np.array([log_prior[1] - log_prior[0]])


def _fit_part(x: np.ndarray, y: np.ndarray, num_classes: int, width: int, c: float,
              max_iter: int) -> Any:
    classes = np.unique(y)
    if len(classes) < 2:
        return _constant(np.bincount(y, minlength=num_classes).astype(float), width)
    model = LogisticRegression(C=c, max_iter=max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # reported once, in the results
        model.fit(x, y)
    return model, classes


def fit_probe(task: Task, train: SplitFeatures, c: float, max_iter: int) -> Probe:
    scaler = StandardScaler().fit(train.features)
    x = scaler.transform(train.features)
    if not task.multilabel:
        part = _fit_part(x, train.labels, len(task.names), len(task.names), c, max_iter)
        return Probe(task, scaler, [(slice(0, len(task.names)), part)])
    parts = []
    for index, (columns, three) in enumerate(zip(task.output_slices(), task.three_way)):
        target = train.labels[:, index]
        counted = target >= 0 if three else (target == POSITIVE) | (target == NEGATIVE)
        if (parent := task.parents[index]) >= 0:
            counted &= train.labels[:, parent] == POSITIVE
        width = columns.stop - columns.start
        parts.append((columns, _fit_part(x[counted], target[counted], 3 if three else 2, width,
                                         c, max_iter)))
    return Probe(task, scaler, parts)


def _score(metrics: dict[str, Any], name: str) -> float:
    value = metrics.get(name)
    return float("-inf") if value is None else float(value)


def choose_and_fit(task: Task, features: dict[str, SplitFeatures], probe: Any,
                   best_metric: str, log: RunLog) -> tuple[Probe, dict[str, float]]:
    """The probe with the C of the best validation metric (the smallest C on ties)."""
    by_c: dict[str, float] = {}
    best: tuple[float, Probe] | None = None
    for c in sorted(probe.c_values):
        fitted = fit_probe(task, features["train"], c, probe.max_iter)
        if "val" not in features:  # no validation split: the first (strongest prior) C
            return fitted, by_c
        value = _score(task_metrics(task, features["val"].labels,
                                    fitted.logits(features["val"].features)), best_metric)
        by_c[f"{c:g}"] = value
        log.info("probe C=%g: val %s %.4f", c, best_metric, value)
        if best is None or value > best[0]:
            best = (value, fitted)
    assert best is not None
    return best[1], by_c


# --- the command ------------------------------------------------------------------------------
def extract_and_probe(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, *,
                      set_by_user: Collection[str] = ()) -> dict:
    """Writes the features of every split and results.json of the probe; returns the results."""
    started = time.time()
    spec = configuration.dataset_spec(config)
    notes = demo.apply(config, set_by_user, spec)
    configuration.validate(config, spec)  # once, on the config the features are taken with
    workdir = pathlib.Path(workdir).resolve()
    is_demo = loading.is_demo(config, spec)
    writer = jax.process_index() == 0
    if writer:
        rundir.write_config(workdir, config)
    log = RunLog(workdir, demo=is_demo, enabled=writer)
    for note in notes:
        log.info(note)
    splits = loading.load_splits(config, spec)
    backbone = config.model.init or f"random (train.seed={config.train.seed})"
    log.info("%s: %d train / %d val / %d test images, %s; %s features, weights: %s",
             splits.name, len(splits.train), len(splits.val), len(splits.test),
             splits.task.describe(), config.model.arch, backbone)
    features, splits = extract(config, splits, log)
    if writer:
        for split, values in features.items():
            save(workdir / rundir.FEATURES_DIR, split, values, splits.split(split))

    probe, by_c = choose_and_fit(splits.task, features, config.probe, config.eval.best_metric,
                                 log)
    results: dict[str, Any] = {
        "demo": is_demo,
        "dataset": splits.name,
        "jaxtl_version": __version__,
        **provenance.git_commit(),
        **provenance.environment(),
        "method": "logistic_regression_probe",
        "split_sizes": {name: len(splits.split(name)) for name in SPLITS},
        "task": task_record(splits.task),
        "probe": {"backbone": backbone, "feature_dim": int(features["train"].features.shape[1]),
                  "C": _chosen_c(probe), f"val_{config.eval.best_metric}_by_C": by_c,
                  "max_iter": config.probe.max_iter,
                  "converged": _converged(probe, config.probe.max_iter)},
        "wall_seconds_this_session": None,
        "config": config.to_dict(),
    }
    if writer and not results["probe"]["converged"]:
        logging.warning("a logistic regression stopped at probe.max_iter=%d before "
                        "converging; raise probe.max_iter", config.probe.max_iter)
    for split in ("val", "test"):
        if split not in features:
            results[split] = None
            continue
        records = splits.split(split)
        results[split] = task_metrics(
            splits.task, features[split].labels, probe.logits(features[split].features),
            [r.patient for r in records], bootstrap_samples=config.eval.bootstrap_samples,
            seed=config.eval.bootstrap_seed)
        log.write(0, f"final_{split}", results[split])
        log.info("probe, %s: %s %.4f", split, config.eval.best_metric,
                 _score(results[split], config.eval.best_metric))
    results["wall_seconds_this_session"] = time.time() - started
    if writer:
        rundir.write_results(workdir, results)
    log.info("features in %s, results written to %s", workdir / rundir.FEATURES_DIR,
             workdir / rundir.RESULTS_FILE)
    log.close()
    return results


def _chosen_c(probe: Probe) -> float | None:
    for _, part in probe.parts:
        if not isinstance(part, np.ndarray):
            return float(part[0].C)
    return None  # every label was constant


def _converged(probe: Probe, max_iter: int) -> bool:
    return all(isinstance(part, np.ndarray) or int(np.max(part[0].n_iter_)) < max_iter
               for _, part in probe.parts)


def define_flags() -> cli.Options:
    return {
        "config": cli.config_flag("Experiment config file (configs/*.py)."),
        "workdir": flags.DEFINE_string("workdir", None,
                                       "Folder for the features and results.json."),
    }


def main(argv: list[str], options: cli.Options) -> None:
    del argv
    extract_and_probe(options["config"].value, options["workdir"].value,
                      set_by_user=cli.config_overrides(options["config"]))


def check(argv: list[str], options: cli.Options) -> str:
    """--check: the config as this program takes it (demo settings applied)."""
    return cli.check_config(argv, options, demo_run=True)


if __name__ == "__main__":
    cli.run(main, define_flags, required=("config", "workdir"), check=check)
