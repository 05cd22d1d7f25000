"""Paired comparisons of runs scored on the same images (`python -m jaxtl.commands.compare`, reports).

Two groups of runs, A and B (one run each, or several seeds of one configuration), are read
from their `predictions_<split>.npz` (labels, scores, image and patient ids, saved by every
finished run). They must hold the same images in the same order with the same labels:
comparing against different ground truth is refused. Per metric, the difference mean(A) -
mean(B) (over each group's runs), its 95% interval and a two-sided p-value:

- AUROC of one label (a per-label `auroc/<label>`, and `mean_auroc` of a one-label task): the
  contrast of the groups' mean AUROC by DeLong's test for correlated AUROCs
  (`jaxtl.metrics.delong`), in its clustered form (Obuchowski 1997, patients as clusters) where
  a patient has several of the label's images, else image-level (Sun and Xu's algorithm);
- every other metric (kappa, accuracy, F1, AP, ECE, a mean AUROC over several labels): the
  paired bootstrap over patients (`jaxtl.metrics.paired`).
The metrics are those of results.json, recomputed from the saved scores (they equal it).
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxtl.core import tasks
from jaxtl.core.errors import UserError
from jaxtl.metrics import metric_function
from jaxtl.metrics.delong import CLUSTERED_DELONG, DELONG, chosen_test, contrast_test
from jaxtl.metrics.paired import paired_bootstrap
from jaxtl.workdir import files as rundir

BOOTSTRAP = "paired bootstrap"
TESTS = (DELONG, CLUSTERED_DELONG, BOOTSTRAP)
DEFAULT_SAMPLES = 2000


@dataclasses.dataclass(frozen=True)
class Predictions:
    """One run's saved predictions on one split."""

    run: str
    task: tasks.Task
    labels: np.ndarray
    scores: np.ndarray
    image_ids: np.ndarray
    patients: np.ndarray


@dataclasses.dataclass(frozen=True)
class Difference:
    metric: str
    a: float | None
    b: float | None
    difference: float | None  # a - b
    ci: tuple[float, float] | None
    p_value: float | None
    method: str  # the test and what it ran on, e.g. 'clustered DeLong (60 patients, ...)'
    test: str  # one of TESTS
    patients: int  # patients (clusters) and images the test ran on
    images: int

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load(workdir: str | pathlib.Path, split: str = "test") -> Predictions:
    workdir = pathlib.Path(workdir)
    results = rundir.read_results(workdir)
    path = rundir.predictions_file(workdir, split)
    if results is None or not path.is_file():
        raise UserError(f"{workdir} holds no finished run with {path.name}: pass the workdir "
                        f"of a finished run (python -m jaxtl.main ... --workdir)")
    with np.load(path) as saved:
        if "image_ids" not in saved:
            raise UserError(f"{path} has no image ids (written by an older jaxtl): score the "
                            f"run again to compare it")
        arrays = {key: saved[key] for key in ("labels", "scores", "image_ids", "patients")}
    return Predictions(run=str(workdir), task=tasks.Task.from_record(results["task"]), **arrays)


def check_same_images(runs: Sequence[Predictions]) -> None:
    """Refuses runs that were not scored on the same images with the same labels."""
    first = runs[0]
    for other in runs[1:]:
        where = f"{first.run} and {other.run}"
        if other.task.names != first.task.names:
            raise UserError(f"{where} predict different classes or labels "
                            f"({', '.join(first.task.names)} / {', '.join(other.task.names)})")
        if not np.array_equal(other.image_ids, first.image_ids):
            raise UserError(f"{where} were scored on different images (different data, split "
                            f"or split seed): a paired comparison needs the same test images")
        if not np.array_equal(other.labels, first.labels):
            raise UserError(f"{where} score the same images against different labels (e.g. "
                            f"another chest.eval_uncertain): compare runs with the same "
                            f"evaluation labels")


def default_metrics(task: tasks.Task) -> list[str]:
    if task.multilabel:
        return (["mean_auroc"] + [f"auroc/{name}" for name in task.names]
                + ["mean_ap", "micro_f1", "macro_f1", "mean_ece"])
    return ["kappa", "accuracy", "macro_f1", "ece"]


def _delong_label(task: tasks.Task, metric: str) -> int | None:
    """The label index whose single AUROC `metric` is, or None for other metrics."""
    if not task.multilabel:
        return None
    if metric.startswith("auroc/"):
        return task.names.index(metric.split("/", 1)[1])
    if metric == "mean_auroc" and len(task.names) == 1:
        return 0
    return None


def compare(runs_a: Sequence[Predictions], runs_b: Sequence[Predictions],
            metrics: Sequence[str] | None = None, *, samples: int = DEFAULT_SAMPLES,
            seed: int = 0) -> list[Difference]:
    """mean(A) - mean(B) of each metric with its interval and p-value."""
    check_same_images([*runs_a, *runs_b])
    first = runs_a[0]
    task = first.task
    metrics = list(metrics or default_metrics(task))
    known = set(default_metrics(task)) | {"micro_ap", "mean_auroc", "mean_ap"} | (
        {f"ap/{name}" for name in task.names} | {f"ece/{name}" for name in task.names}
        if task.multilabel else set())
    unknown = [metric for metric in metrics if metric not in known]
    if unknown:
        raise UserError(f"cannot compare {', '.join(unknown)}; metrics of this task: "
                        f"{', '.join(sorted(known))}")
    out: dict[str, Difference] = {}
    bootstrapped = [m for m in metrics if _delong_label(task, m) is None]
    if bootstrapped:
        computes = [[metric_function(task, run.labels, run.scores, bootstrapped) for run in side]
                    for side in (runs_a, runs_b)]
        patients, images = len(set(first.patients)), len(first.patients)
        for metric, result in paired_bootstrap(*computes, first.patients, bootstrapped,
                                               samples=samples, seed=seed).items():
            out[metric] = Difference(metric, result.a, result.b, result.difference, result.ci,
                                     result.p_value, f"{BOOTSTRAP} ({result.valid} of "
                                                     f"{samples} resamples of {patients} "
                                                     f"patients, {images} images)",
                                     BOOTSTRAP, patients, images)
    for metric in metrics:
        index = _delong_label(task, metric)
        if index is None:
            continue
        counted = (first.labels[:, index] == tasks.POSITIVE) | (
            first.labels[:, index] == tasks.NEGATIVE)
        positive = first.labels[counted, index] == tasks.POSITIVE
        scores = np.stack([run.scores[counted, index] for run in (*runs_a, *runs_b)])
        contrast = [1 / len(runs_a)] * len(runs_a) + [-1 / len(runs_b)] * len(runs_b)
        patients = first.patients[counted]
        try:
            test = contrast_test(scores, positive, contrast, patients)
        except ValueError as error:  # too few positives or negatives
            name = chosen_test(patients, len(patients))
            out[metric] = Difference(metric, None, None, None, None, None, f"{name}: {error}",
                                     name, len(set(patients)), len(patients))
            continue
        a, b = test.aurocs[:len(runs_a)], test.aurocs[len(runs_a):]
        images = test.positives + test.negatives
        out[metric] = Difference(
            metric, float(np.mean(a)), float(np.mean(b)), test.difference, test.ci,
            test.p_value, f"{test.test} ({test.clusters} patients, {images} images: "
                          f"{test.positives} positive, {test.negatives} negative)",
            test.test, test.clusters, images)
    return [out[metric] for metric in metrics]


def fmt(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def p_text(p: float | None) -> str:
    if p is None:
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def cells(difference: Difference) -> list[str]:
    """metric, A, B, A - B, 95% CI, p, test: one table row."""
    ci = difference.ci
    return [difference.metric, fmt(difference.a), fmt(difference.b),
            fmt(difference.difference, 4) if difference.difference is not None else "",
            f"[{fmt(ci[0], 4)}, {fmt(ci[1], 4)}]" if ci else "", p_text(difference.p_value),
            difference.method]


HEADER = ["metric", "A", "B", "A - B", "95% CI", "p", "test"]
