"""The report of one finished run folder (python -m jaxtl.report RUN): its headline metrics
with intervals, learning curves (metrics.jsonl), by task kind the confusion matrix and ROC /
precision-recall curves (multi-label: one curve per label) or the segmentation overlays, the
reliability diagram and the per-class / per-label table, from the files the run left."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxtl.core import tasks
from jaxtl.metrics import headline
from jaxtl.report import figures
from jaxtl.report.document import Document
from jaxtl.sweep import table
from jaxtl.workdir import files as rundir

SPLITS = ("val", "test")
CURVE_SPLIT = "test"  # the split whose predictions are drawn
OVERLAYS = 4  # segmentation overlays shown


def is_run(folder: pathlib.Path) -> bool:
    """A run folder: it holds a run's config (finished or not) or results (also those of
    python -m jaxtl.commands.evaluate)."""
    return any((pathlib.Path(folder) / name).is_file()
               for name in (rundir.CONFIG_FILE, rundir.RESULTS_FILE))


def headline_metric(results: Mapping[str, Any]) -> str:
    """The run's `eval.best_metric`, else the first scalar metric its test or val split holds."""
    metric = ((results.get("config") or {}).get("eval") or {}).get("best_metric")
    if metric:
        return str(metric)
    for split in ("test", "val"):
        names = headline.scalar_names(results.get(split) or {})
        if names:
            return names[0]
    return "loss"


def build_run(run_dir: pathlib.Path, results: Mapping[str, Any]) -> Document:
    run_dir = pathlib.Path(run_dir)
    metric = headline_metric(results)
    doc = Document(title=f"Run report: {run_dir.name}")
    if results.get("demo"):
        doc.banner("DEMO: this run trained on synthetic demo data (no data.root). The numbers "
                   "show that the pipeline works; they say nothing about real images.")
    _summary(doc, results, metric)
    record = results.get("task") or {}
    _learning_curves(doc, run_dir, metric)
    if record.get("kind") == tasks.SEGMENTATION:
        _overlays(doc, run_dir)
    elif record.get("kind") in tasks.KINDS:
        _classification(doc, run_dir, results, tasks.Task.from_record(record))
    _per_class_table(doc, results)
    return doc


def _summary(doc: Document, results: Mapping[str, Any], metric: str) -> None:
    config = results.get("config") or {}
    model = (config.get("model") or {}).get("arch", "?")
    sizes = results.get("split_sizes") or {}
    stopped = results.get("stopped_epoch")
    commit = results.get("git_commit")
    doc.paragraph(
        f"{results.get('dataset')} ({(results.get('task') or {}).get('kind', '?')}: "
        f"{', '.join(map(str, (results.get('task') or {}).get('names', [])))}); "
        f"{model}, {results.get('optimizer') or '?'}; "
        + ", ".join(f"{sizes[name]} {name}" for name in ("train", "val", "test") if name in sizes)
        + f" images. Best checkpoint: epoch {results.get('best_epoch')} of "
        f"{results.get('epochs')}" + (f" (early stop at epoch {stopped})" if stopped else "")
        + f". jaxtl {results.get('jaxtl_version', 'unknown')}"
        + (f", git commit `{str(commit)[:12]}{'+dirty' if results.get('git_dirty') else ''}`"
           if commit else "") + ".")
    scored = [split for split in SPLITS if isinstance(results.get(split), Mapping)]
    doc.heading("Headline")
    doc.table(["split", metric, "intervals from"],
              [[split, headline.metric_text(results[split], metric),
                _interval_source(results[split])] for split in scored])
    doc.heading("Metrics of the best checkpoint")
    doc.table(*headline.splits_table(results, SPLITS, per_class=False))


def _interval_source(metrics: Mapping[str, Any]) -> str:
    samples = metrics.get("bootstrap_samples")
    return (f"{samples} resamples ({headline.level_text(metrics)})" if samples
            else "no interval")


def _learning_curves(doc: Document, run_dir: pathlib.Path, metric: str) -> None:
    records = table.read_log(run_dir)
    if not any(record.get("split") in ("train", "val") for record in records):
        doc.paragraph(f"No `{rundir.METRICS_FILE}` records: no learning curves.")
        return
    png, _ = figures.learning_curves([(run_dir.name, records)], metric)
    doc.figure("learning_curves.png", png,
               f"Learning curves (from {rundir.METRICS_FILE}): training loss per logged step "
               f"and validation {metric} per epoch.")


def _classification(doc: Document, run_dir: pathlib.Path, results: Mapping[str, Any],
                    task: tasks.Task) -> None:
    path = rundir.predictions_file(run_dir, CURVE_SPLIT)
    matrix = (results.get(CURVE_SPLIT) or {}).get("confusion_matrix")
    if not task.multilabel and isinstance(matrix, list) and matrix:
        names = list(task.names) if len(task.names) == len(matrix) else [
            str(i) for i in range(len(matrix))]
        doc.figure("confusion.png",
                   figures.confusion_matrix(matrix, names, f"{CURVE_SPLIT} split"),
                   f"Confusion matrix ({CURVE_SPLIT} split, best checkpoint): counts, coloured "
                   f"by the fraction of each true class.")
    if not path.is_file():
        doc.paragraph(f"No `{path.name}` in the run folder: no ROC, precision-recall or "
                      f"reliability curves.")
        return
    with np.load(path) as saved:
        labels, scores = saved["labels"], saved["scores"]
    if task.multilabel and labels.shape == scores.shape:
        png, drawn = figures.roc_pr_per_label(labels, scores, task.names,
                                              f"{CURVE_SPLIT} split")
        flat = [name for name, curve in drawn.items() if curve is None]
        doc.figure("roc_pr.png", png,
                   f"ROC and precision-recall curves per label ({CURVE_SPLIT} split), each "
                   f"over the label's entries labelled 0 or 1."
                   + (f" No curve where those entries hold one class only: {', '.join(flat)}."
                      if flat else ""))
    else:
        png, _ = figures.roc_pr([(run_dir.name, labels, scores)], f"{CURVE_SPLIT} split")
        doc.figure("roc_pr.png", png,
                   f"ROC and precision-recall curves ({CURVE_SPLIT} split; several classes: "
                   f"micro-averaged one-vs-rest).")
    scaled = {run_dir.name: figures.temperature_scaled(results, scores)}
    png, _ = figures.reliability_diagram([(run_dir.name, labels, scores)],
                                         f"{CURVE_SPLIT} split", scaled)
    doc.figure("reliability.png", png,
               f"Reliability diagram ({CURVE_SPLIT} split): the fraction correct (softmax "
               f"tasks: of the top-label prediction) or positive (multi-label: every label's "
               f"counted entries pooled) against the mean confidence in 15 equal-width bins; "
               f"the diagonal is perfect calibration. Dashed: after the temperature scaling "
               f"fitted on the validation split, where the run has one.")


def _overlays(doc: Document, run_dir: pathlib.Path) -> None:
    files = rundir.segmentation_overlays(run_dir, CURVE_SPLIT)[:OVERLAYS]
    if not files:
        doc.paragraph("The run folder holds no segmentation overlays.")
        return
    png, _ = figures.overlay_gallery([(run_dir.name, files)])
    doc.figure("masks.png", png,
               f"The first {len(files)} {CURVE_SPLIT} tiles: the tile, its annotated classes and "
               f"the predicted ones (each overlay's key names the colours).")


def _per_class_table(doc: Document, results: Mapping[str, Any]) -> None:
    """Rows: classes or labels; columns: every per-class metric of the drawn split (else
    val), each with its interval."""
    split = next((name for name in (CURVE_SPLIT, *SPLITS)
                  if isinstance(results.get(name), Mapping)), None)
    families = headline.per_class_names(results[split]) if split else {}
    if not families:
        return
    doc.heading(f"Per class / per label ({split} split)")
    names = list(dict.fromkeys(name for found in families.values() for name in found))
    doc.table(["class / label", *families],
              [[name, *(headline.metric_text(results[split], f"{family}.{name}")
                        for family in families)] for name in names])
    doc.paragraph(f"Each value with its {headline.level_text(results[split])} where the run "
                  f"computed one.")
