"""The report's figures, drawn with matplotlib (Agg, no display) into small PNGs.

Each function returns the PNG bytes and the numbers it drew, so tests can check what is shown.
"""

from __future__ import annotations

import dataclasses
import io
import math
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from PIL import Image
from sklearn import metrics as skm

from jaxtl.core import tasks
from jaxtl.metrics import temperature
from jaxtl.metrics.calibration import expected_calibration_error, reliability
from jaxtl.report import select

DPI = 90
PANEL = (4.2, 3.2)  # inches per panel
OVERLAY_PANEL = (3.4, 2.0)  # inches per overlay (the input and the map side by side)
BAND_ALPHA = 0.2


def to_png(figure: Figure) -> bytes:
    """PNG bytes, reduced to a 256-colour palette (line plots lose nothing visible)."""
    raw = io.BytesIO()
    figure.savefig(raw, format="png", dpi=DPI, bbox_inches="tight")
    image = Image.open(io.BytesIO(raw.getvalue())).convert("RGB")
    small = io.BytesIO()
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(small, format="png",
                                                                     optimize=True)
    return small.getvalue()


def _grid(count: int, columns: int = 3) -> tuple[Figure, list[Any]]:
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(PANEL[0] * columns, PANEL[1] * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel().tolist()
    for extra in axes[count:]:
        extra.set_visible(False)
    return figure, axes[:count]


def _size_label(point: select.Point) -> str:
    if point.all_images:
        return f"all\n(~{point.x:.0f})"
    return f"{point.x:g}"


def metric_vs_size(study: select.Study, panels: Mapping[str, Sequence[select.Row]],
                   panel_name: str = "", size_label: str = "training images per class"
                   ) -> tuple[bytes, dict[str, dict[str, list]]]:
    """Metric against training size (log x; `size_label` names it), one line per pretraining
    source through the mean over seeds, every seed's value as a dot, and a band: mean +- one
    standard deviation over seeds where a point has several, else the run's confidence
    interval (as error bars where a line has a single point)."""
    figure, axes = _grid(len(panels))
    drawn: dict[str, dict[str, list]] = {}
    for ax, (panel, rows) in zip(axes, panels.items()):
        lines = select.series(list(rows), study)
        drawn[panel] = {line: [(p.x, p.y, p.ci, p.run) for p in points]
                        for line, points in lines.items()}
        ticks: dict[float, str] = {}
        for line, points in lines.items():
            xs = np.array([p.x for p in points])
            ys = np.array([p.y for p in points])
            (handle,) = ax.plot(xs, ys, "o-", label=line, linewidth=1.6, markersize=4)
            seeds = [(p.x, v) for p in points if len(p.values) > 1 for v in p.values]
            if seeds:
                ax.plot(*zip(*seeds), ".", color=handle.get_color(), alpha=0.5, markersize=4)
            with_ci = [dataclasses.replace(p, ci=(p.y - p.spread, p.y + p.spread))
                       if p.spread is not None else p for p in points]
            with_ci = [p for p in with_ci if p.ci is not None]
            if len(with_ci) >= 2:
                ax.fill_between([p.x for p in with_ci], [p.ci[0] for p in with_ci],
                                [p.ci[1] for p in with_ci], color=handle.get_color(),
                                alpha=BAND_ALPHA, linewidth=0)
            elif with_ci:
                p = with_ci[0]
                ax.errorbar([p.x], [p.y], yerr=[[p.y - p.ci[0]], [p.ci[1] - p.y]],
                            color=handle.get_color(), capsize=3)
            ticks |= {p.x: _size_label(p) for p in points}
        ax.set_xscale("log")
        if ticks:
            ax.set_xticks(sorted(ticks), [ticks[x] for x in sorted(ticks)])
            ax.minorticks_off()
        ax.set_xlabel(size_label)
        ax.set_ylabel(f"{study.split} {study.metric}")
        ax.grid(True, alpha=0.3)
        ax.set_title(f"{panel_name}: {panel}" if panel_name else study.title, fontsize=10)
        if lines:
            ax.legend(title="pretraining", fontsize=8, title_fontsize=8)
    return to_png(figure), drawn


TRAINABLE = "parameters.trainable"  # the sweep table's column (jaxtl.sweep.table)


def adaptation(row: select.Row) -> str:
    """How a run adapted its model: 'LoRA r8', 'linear probe', 'full', ... (the marker)."""
    if row.get("train.adapter") == "lora":
        return f"LoRA r{row.get('lora.rank')}"
    strategy = str(row.get("finetune.strategy") or "full")
    return strategy.replace("_", " ")


def metric_vs_trainable(study: select.Study) -> tuple[bytes, dict[str, list]]:
    """The metric against the parameters each run trained (log x): one colour per model,
    one marker per adaptation (full fine-tuning, linear probe, LoRA, ...), each run a point
    with its confidence interval where it has one."""
    figure = Figure(figsize=PANEL, layout="constrained")
    ax = figure.subplots()
    markers = dict(zip(sorted({adaptation(row) for row in study.rows}), "osD^vP*X"))
    colours: dict[str, Any] = {}
    drawn: dict[str, list] = {}
    for row in study.rows:
        y, x = select.value(row, study.split, study.metric), row.get(TRAINABLE)
        if y is None or not isinstance(x, (int, float)) or x <= 0:
            continue
        arch, how = str(row.get("model.arch")), adaptation(row)
        ci = select.interval(row, study.split, study.metric)
        handle = ax.errorbar([x], [y], yerr=None if ci is None else [[y - ci[0]], [ci[1] - y]],
                             fmt=markers[how], color=colours.get(arch), capsize=2,
                             markersize=5)
        colours.setdefault(arch, handle.lines[0].get_color())
        drawn.setdefault(f"{arch}, {how}", []).append((x, y, ci, row.get("run")))
    for arch, colour in colours.items():
        ax.plot([], [], "o", color=colour, label=arch)
    for how, marker in markers.items():
        ax.plot([], [], marker, color="grey", label=how)
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters")
    ax.set_ylabel(f"{study.split} {study.metric}")
    ax.grid(True, alpha=0.3)
    ax.set_title(study.title, fontsize=10)
    if drawn:
        ax.legend(fontsize=7)
    return to_png(figure), drawn


def binary_view(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """(targets, scores, what) for one ROC/PR curve of a run's predictions.

    Two classes: the positive class. More classes: micro-average one-vs-rest. Multi-label:
    micro-average over the entries that are labelled 0 or 1 (masked/uncertain left out).
    """
    labels, scores = np.asarray(labels), np.asarray(scores, np.float64)
    if labels.ndim == 2:
        keep = (labels == 0) | (labels == 1)
        return labels[keep] == 1, scores[keep], "micro-average over labels"
    if scores.shape[1] == 2:
        return labels == 1, scores[:, 1], "positive class"
    one_hot = np.eye(scores.shape[1], dtype=bool)[labels]
    return one_hot.ravel(), scores.ravel(), "micro-average one-vs-rest over classes"


def roc_pr(curves: Sequence[tuple[str, np.ndarray, np.ndarray]],
           title: str) -> tuple[bytes, dict[str, dict[str, float]]]:
    """ROC (left) and precision-recall (right) curves, one per (label, labels, scores)."""
    figure, (roc_ax, pr_ax) = _grid(2, columns=2)
    drawn: dict[str, dict[str, float]] = {}
    what = ""
    for label, labels, scores in curves:
        targets, flat_scores, what = binary_view(labels, scores)
        fpr, tpr, _ = skm.roc_curve(targets, flat_scores)
        precision, recall, _ = skm.precision_recall_curve(targets, flat_scores)
        auroc = float(skm.roc_auc_score(targets, flat_scores))
        ap = float(skm.average_precision_score(targets, flat_scores))
        drawn[label] = {"auroc": auroc, "ap": ap, "prevalence": float(np.mean(targets))}
        roc_ax.plot(fpr, tpr, label=f"{label} (AUC {auroc:.3f})", linewidth=1.4)
        pr_ax.step(recall, precision, where="post", label=f"{label} (AP {ap:.3f})",
                   linewidth=1.4)
    roc_ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    if drawn:
        prevalence = next(iter(drawn.values()))["prevalence"]
        pr_ax.axhline(prevalence, color="grey", linestyle=":", linewidth=1)
    _label_roc_pr(roc_ax, pr_ax, f"ROC, {title}\n({what})",
                  f"precision-recall, {title}\n({what})", legend=True)
    return to_png(figure), drawn


def _label_roc_pr(roc_ax, pr_ax, roc_title: str, pr_title: str, legend: bool) -> None:
    """Axis labels, titles, grid and (with `legend`) legends of a ROC / precision-recall pair."""
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title=roc_title)
    pr_ax.set(xlabel="recall", ylabel="precision", title=pr_title, ylim=(0, 1.02))
    for ax in (roc_ax, pr_ax):
        ax.title.set_fontsize(9)
        ax.grid(True, alpha=0.3)
        if legend:
            ax.legend(fontsize=7, loc="lower right" if ax is roc_ax else "lower left")


def roc_pr_per_label(labels: np.ndarray, scores: np.ndarray, names: Sequence[str],
                     title: str) -> tuple[bytes, dict[str, dict[str, float] | None]]:
    """A multi-label run's ROC (left) and precision-recall (right) curves, one per label, each
    over the label's entries labelled 0 or 1 (masked or uncertain ones left out); a label
    whose counted entries hold one class only has no curve (None in what is returned)."""
    labels, scores = np.asarray(labels), np.asarray(scores, np.float64)
    figure, (roc_ax, pr_ax) = _grid(2, columns=2)
    drawn: dict[str, dict[str, float] | None] = {}
    for column, name in enumerate(names):
        keep = (labels[:, column] == 0) | (labels[:, column] == 1)
        targets, label_scores = labels[keep, column] == 1, scores[keep, column]
        if targets.all() or not targets.any():
            drawn[name] = None
            continue
        fpr, tpr, _ = skm.roc_curve(targets, label_scores)
        precision, recall, _ = skm.precision_recall_curve(targets, label_scores)
        auroc = float(skm.roc_auc_score(targets, label_scores))
        ap = float(skm.average_precision_score(targets, label_scores))
        drawn[name] = {"auroc": auroc, "ap": ap, "prevalence": float(np.mean(targets))}
        (handle,) = roc_ax.plot(fpr, tpr, label=f"{name} (AUC {auroc:.3f})", linewidth=1.2)
        pr_ax.step(recall, precision, where="post", label=f"{name} (AP {ap:.3f})",
                   linewidth=1.2, color=handle.get_color())
    roc_ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    _label_roc_pr(roc_ax, pr_ax, f"ROC per label, {title}",
                  f"precision-recall per label, {title}", legend=any(drawn.values()))
    return to_png(figure), drawn


def confusion_matrix(matrix: Sequence[Sequence[int]], names: Sequence[str],
                     title: str) -> bytes:
    """Counts, coloured by the fraction of each true class (rows are true classes)."""
    counts = np.asarray(matrix, dtype=np.int64)
    fractions = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure = Figure(figsize=(4.4, 3.8), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
    for (i, j), count in np.ndenumerate(counts):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=8,
                color="white" if fractions[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true")
    ax.set_title(title, fontsize=9)
    figure.colorbar(image, ax=ax, label="fraction of the true class", shrink=0.8)
    return to_png(figure)


def learning_curves(logs: Sequence[tuple[str, Sequence[Mapping[str, Any]]]],
                    metric: str) -> tuple[bytes, dict[str, dict[str, list]]]:
    """Training loss (left) and validation metric (right) against epochs, one line per run."""
    figure, (loss_ax, metric_ax) = _grid(2, columns=2)
    drawn: dict[str, dict[str, list]] = {}
    for label, records in logs:
        train = [r for r in records if r.get("split") == "train" and "loss" in r]
        val = [r for r in records if r.get("split") == "val" and metric in r]
        drawn[label] = {"train": [(r["epoch"], r["loss"]) for r in train],
                        "val": [(r["epoch"], r[metric]) for r in val]}
        (handle,) = loss_ax.plot(*zip(*drawn[label]["train"]), linewidth=1.2,
                                 label=label) if train else (None,)
        if val:
            metric_ax.plot(*zip(*drawn[label]["val"]), "o-", markersize=3, linewidth=1.2,
                           label=label, color=handle.get_color() if handle else None)
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="training loss")
    metric_ax.set(xlabel="epoch", ylabel=f"validation {metric}", title=f"validation {metric}")
    for ax in (loss_ax, metric_ax):
        ax.title.set_fontsize(9)
        ax.grid(True, alpha=0.3)
        if logs:
            ax.legend(fontsize=7)
    return to_png(figure), drawn


def overlay_gallery(rows: Sequence[tuple[str, Sequence[pathlib.Path]]]
                    ) -> tuple[bytes, dict[str, list[str]]]:
    """One row of overlay PNGs (jaxtl.explain's: the input beside the map over it) per
    (label, files), titled with the label and the files' names."""
    columns = max(len(files) for _, files in rows)
    figure = Figure(figsize=(OVERLAY_PANEL[0] * columns, OVERLAY_PANEL[1] * len(rows)),
                    layout="constrained")
    axes = figure.subplots(len(rows), columns, squeeze=False)
    drawn: dict[str, list[str]] = {}
    for row_axes, (label, files) in zip(axes, rows):
        drawn[label] = [file.name for file in files]
        for column, ax in enumerate(row_axes):
            ax.set_axis_off()
            if column < len(files):
                with Image.open(files[column]) as overlay:
                    ax.imshow(np.asarray(overlay.convert("RGB")), interpolation="nearest")
                ax.set_title((f"{label}\n" if column == 0 else "\n") + files[column].stem,
                             fontsize=7, loc="left")
    return to_png(figure), drawn


def calibration_view(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """(confidence, outcome, what) for a reliability diagram of a run's predictions: the
    top-label confidence and whether it is right (softmax tasks), or P(positive) and whether
    the entry is positive over every counted entry of every label (multi-label)."""
    labels, scores = np.asarray(labels), np.asarray(scores, np.float64)
    if labels.ndim == 2:
        keep = (labels == 0) | (labels == 1)
        return scores[keep], labels[keep] == 1, "P(positive), all labels' entries pooled"
    predicted = scores.argmax(axis=1)
    return (scores[np.arange(len(labels)), predicted], predicted == labels,
            "top-label confidence")


def temperature_scaled(results: Mapping[str, Any] | None,
                       scores: np.ndarray) -> np.ndarray | None:
    """A run's saved scores after the temperature scaling its results.json records (None when
    it records none)."""
    entry = (results or {}).get("calibration")
    if not entry:
        return None
    task = tasks.Task.from_record(results["task"])
    return temperature.scale_scores(task, scores, temperature.from_json(task,
                                                                        entry["temperature"]))


def reliability_diagram(curves: Sequence[tuple[str, np.ndarray, np.ndarray]], title: str,
                        scaled: Mapping[str, np.ndarray | None] | None = None,
                        ) -> tuple[bytes, dict[str, dict[str, Any]]]:
    """Per run: mean outcome against mean confidence in 15 equal-width bins (left, with the
    diagonal of perfect calibration) and how many entries each bin holds (right). `scaled`:
    per run label, its scores after temperature scaling, drawn dashed in the run's colour
    (under "<label>, temperature-scaled" in what is returned)."""
    figure, (curve_ax, count_ax) = _grid(2, columns=2)
    drawn: dict[str, dict[str, Any]] = {}
    what = ""
    for label, labels, scores in curves:
        colour = None
        after = (scaled or {}).get(label)
        for name, values, style in ((label, scores, "o-"),
                                    (f"{label}, temperature-scaled", after, "s--")):
            if values is None:
                continue
            confidence, outcome, what = calibration_view(labels, values)
            table = reliability(confidence, outcome)
            ece = expected_calibration_error(confidence, outcome)
            used = table.weight > 0
            drawn[name] = {"ece": ece, "confidence": table.confidence[used].tolist(),
                           "outcome": table.outcome[used].tolist(),
                           "count": table.weight[used].tolist()}
            (handle,) = curve_ax.plot(table.confidence[used], table.outcome[used], style,
                                      color=colour, markersize=3, linewidth=1.4,
                                      label=f"{name} (ECE {ece:.3f})")
            colour = handle.get_color()
            centres = (table.edges[:-1] + table.edges[1:]) / 2
            count_ax.step(centres, table.weight, where="mid", color=colour, linewidth=1.2,
                          linestyle=style[1:], label=name)
    curve_ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    curve_ax.set(xlabel="mean confidence in bin", ylabel="fraction correct / positive",
                 title=f"reliability, {title}\n({what})", xlim=(0, 1), ylim=(0, 1))
    count_ax.set(xlabel="confidence", ylabel="entries per bin", yscale="log",
                 title=f"confidence histogram, {title}")
    for ax in (curve_ax, count_ax):
        ax.title.set_fontsize(9)
        ax.grid(True, alpha=0.3)
        if curves:
            ax.legend(fontsize=7, loc="upper left")
    return to_png(figure), drawn
