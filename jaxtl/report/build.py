"""From a sweep folder (results.jsonl, run folders) to the report document."""

from __future__ import annotations

import json
import pathlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jaxtl.metrics import thresholds
from jaxtl.report import explanations, figures, select
from jaxtl.report import paired_runs as comparison
from jaxtl.report import segmentation as segmentation_report
from jaxtl.report import study_tests as comparisons
from jaxtl.report.document import Document
from jaxtl.sweep import table
from jaxtl.workdir import files as rundir


def fmt(number: Any, digits: int = 3) -> str:
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        return "" if number is None else str(number)
    return f"{number:.{digits}f}"


def with_ci(row: Mapping[str, Any], split: str, metric: str) -> str:
    point = select.value(row, split, metric)
    if point is None:
        return ""
    ci = select.interval(row, split, metric)
    return fmt(point) + (f" [{fmt(ci[0])}, {fmt(ci[1])}]" if ci else "")


def _seconds(value: Any) -> str:
    return "" if not isinstance(value, (int, float)) else f"{value / 60:.1f} min"


def natural(text: str) -> list:
    """Sort key with numbers in numeric order: n=30 before n=100."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def build(sweep_dir: pathlib.Path, rows: Sequence[Mapping[str, Any]],
          chosen: Sequence[str] = (), comparison_samples: int = comparisons.SAMPLES) -> Document:
    """The report of a sweep; `chosen` names the runs whose curves to draw (default: per
    pretraining source, the best-validated run at the largest training size);
    `comparison_samples`: patient resamples of the paired comparisons."""
    sweep_dir = pathlib.Path(sweep_dir)
    info_path = sweep_dir / table.SWEEP_FILE
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    doc = Document(title=f"Sweep report: {info.get('sweep_file', sweep_dir.name)}")
    if any(row.get("demo") for row in rows):
        doc.banner("DEMO: these runs trained on synthetic demo data (no data.root). The numbers "
                   "show that the pipeline works; they say nothing about real images.")
    _summary(doc, info, rows)
    studies = select.studies(rows)
    if not studies:
        doc.paragraph("No grid run has finished yet: there is nothing to plot.")
    for study in studies:
        _study_section(doc, sweep_dir, study, chosen, comparison_samples)
    _runs_section(doc, rows)
    return doc


def _summary(doc: Document, info: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> None:
    if info.get("description"):
        doc.paragraph(info["description"])
    counts: dict[str, int] = {}
    for row in rows:
        counts[str(row.get("status"))] = counts.get(str(row.get("status")), 0) + 1
    wall = sum(row.get("wall_seconds") or 0.0 for row in rows)
    cpu = sum(row.get("cpu_seconds") or 0.0 for row in rows)
    versions = sorted({str(row.get("jaxtl_version")) for row in rows if row.get("jaxtl_version")})
    commits = sorted({str(row.get("git_commit"))[:12] + ("+dirty" if row.get("git_dirty") else "")
                      for row in rows if row.get("git_commit")})
    doc.paragraph(
        f"{len(rows)} runs: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        + f". Wall time summed over the runs: {wall / 60:.1f} min"
        + (f" (CPU time {cpu / 60:.1f} min; runs in parallel overlap)" if cpu else "") + ". "
        + f"jaxtl {', '.join(versions) or 'unknown'}; git commit "
        + f"{', '.join(f'`{c}`' for c in commits) or 'unknown'}. "
        + "Tables: `results.csv` and `results.jsonl` in the sweep folder.")


def _study_section(doc: Document, sweep_dir: pathlib.Path, study: select.Study,
                   chosen_names: Sequence[str], comparison_samples: int) -> None:
    slug = _slug(study.dataset)
    if segmentation_report.applies(study):  # Dice and PQ per training tiles, masks
        segmentation_report.section(doc, sweep_dir, study, chosen_names, slug)
        return
    metric_name = f"{study.split} {study.metric}"
    has_ci = any(select.interval(r, study.split, study.metric) for r in study.rows)
    levels = {row.get(f"{study.split}.ci_level") for row in study.rows} - {None}
    level = f"{100 * levels.pop():g}%" if len(levels) == 1 else "95%"
    points = select.series(list(study.rows), study)
    seeded = any(len(p.runs) > 1 for line in points.values() for p in line)
    band_note = ("Lines join the means over seeds (`train.seed`, `data.sample_seed`); dots are "
                 "the seeds' values; bands are mean +- one standard deviation over seeds. "
                 if seeded else "")
    ci_note = (f"Where a point has one run, its band or bracket is the run's {level} "
               f"confidence interval (`<metric>_ci` in results.json; jaxtl resamples "
               f"patients)." if has_ci
               else "These results hold no confidence intervals (`<metric>_ci`).")
    doc.heading(f"{study.dataset}: {metric_name}")
    png, _ = figures.metric_vs_size(study, {study.dataset: study.rows})
    doc.figure(f"{slug}_main.png", png,
               f"{metric_name} against training images per class (log scale), one line per "
               f"pretraining source. Where several configurations share a point, the one with "
               f"the best mean validation {study.metric} is shown. {band_note}{ci_note}")
    _main_table(doc, study, points)
    _bootstrap_notes(doc, study)
    _comparisons(doc, sweep_dir, study, comparison_samples)
    for key, label in (("model.arch", "model"), ("optimizer", "optimizer")):
        if not any(key in row for row in study.rows):
            key = "optim.name"
        panels = select.panels(study, key)
        png, _ = figures.metric_vs_size(study, panels, panel_name=label)
        doc.figure(f"{slug}_per_{label}.png", png,
                   f"The same per {label} ({', '.join(panels)}): one panel each, best "
                   f"validation configuration per point within the panel.")

    trainable = {row.get(figures.TRAINABLE) for row in study.rows} - {None}
    if len(trainable) > 1:  # runs that train different parts of their models
        png, _ = figures.metric_vs_trainable(study)
        doc.figure(f"{slug}_trainable.png", png,
                   f"{metric_name} against the parameters each run trained (log scale; "
                   f"`parameters.trainable` in results.json: the head and the stages its "
                   f"fine-tuning strategy trains, or the LoRA adapters and the head), one "
                   f"colour per model and one marker per way of adapting it, every run a "
                   f"point with its {level} interval.")

    chosen = select.chosen_runs(study, chosen_names)
    curves, scaled = [], {}
    for row in chosen:
        path = rundir.predictions_file(sweep_dir / str(row.get("workdir")), study.split)
        if path.is_file():
            with np.load(path) as saved:
                curves.append((_label(row), saved["labels"], saved["scores"]))
            scaled[_label(row)] = figures.temperature_scaled(
                rundir.read_results(path.parent), curves[-1][2])
    if curves:
        png, _ = figures.roc_pr(curves, f"{study.split} split")
        doc.figure(f"{slug}_roc_pr.png", png,
                   f"ROC and precision-recall curves on the {study.split} split of the chosen "
                   f"runs (per pretraining source, the best-validated run at the largest "
                   f"training size, unless named with --runs).")
        png, _ = figures.reliability_diagram(curves, f"{study.split} split", scaled)
        doc.figure(f"{slug}_reliability.png", png,
                   f"Reliability diagrams of the chosen runs on the {study.split} split: the "
                   f"fraction correct (softmax tasks: of the top-label prediction) or positive "
                   f"(multi-label: P(positive) of every label's counted entries pooled) "
                   f"against the mean confidence in 15 equal-width bins; the diagonal is "
                   f"perfect calibration. ECE: the bin-weighted mean gap (results.json holds "
                   f"`ece`, per label `ece` and `mean_ece` for multi-label tasks, with "
                   f"intervals). Dashed: after temperature scaling fitted on the validation "
                   f"split (`calibrated_ece` and the temperatures, `calibration`, in "
                   f"results.json).")
    else:
        missing = rundir.PREDICTIONS_FILE.format(split=study.split)
        doc.paragraph(f"No `{missing}` in the chosen runs' "
                      f"folders: no ROC, precision-recall or reliability curves.")

    _per_class_tables(doc, study, chosen)
    _operating_points(doc, sweep_dir, chosen)

    best = select.best_by_validation(list(study.rows), study.metric)
    matrix = best.get(f"{study.split}.confusion_matrix")
    if isinstance(matrix, list) and matrix:
        names = [key.split(".", 2)[2] for key in best if key.startswith(f"{study.split}.recall.")]
        if len(names) != len(matrix):
            names = [str(i) for i in range(len(matrix))]
        doc.figure(f"{slug}_confusion.png",
                   figures.confusion_matrix(matrix, names, f"{study.dataset}, {study.split}: "
                                                           f"{best['run']}"),
                   f"Confusion matrix ({study.split} split) of the run with the best validation "
                   f"{study.metric}, `{best['run']}`: counts, coloured by the fraction of each "
                   f"true class.")

    logs = [(_label(row), table.read_log(sweep_dir / str(row.get("workdir")))) for row in chosen]
    logs = [(label, records) for label, records in logs if records]
    if logs:
        png, _ = figures.learning_curves(logs, study.metric)
        doc.figure(f"{slug}_learning_curves.png", png,
                   f"Learning curves of the chosen runs (from metrics.jsonl): training loss "
                   f"and validation {study.metric} per epoch.")

    explanations_section(doc, sweep_dir, study, chosen, slug)


def explanations_section(doc: Document, sweep_dir: pathlib.Path, study: select.Study,
                         chosen: Sequence[Mapping], slug: str) -> None:
    """Where the chosen runs look: the pointing game and a few overlays of each explanation
    that python -m jaxtl.explain left in their folders."""
    found = [(row, explanation) for row in chosen
             for explanation in explanations.of_run(sweep_dir / str(row.get("workdir")),
                                                    study.split)]
    if not found:
        doc.paragraph(f"No explanations of the {study.split} split in the chosen runs' folders: "
                      f"`python -m jaxtl.explain --workdir RUN --split {study.split}` writes "
                      f"them (where the model looks, scored where the findings' regions are "
                      f"known), and this section shows them.")
        return
    body = []
    for row, explanation in found:
        scores = explanation.scores
        scored = bool(scores.get("images"))
        body.append([_label(row), explanation.method, scores.get("images", 0),
                     *(fmt(scores.get(key)) if scored else "" for key in
                       ("pointing_game", "random_map", "mass_inside", "uniform_map_mass")),
                     explanation.not_scored or "", f"`{row['run']}`"])
    doc.paragraph(f"Where the chosen runs look ({study.split} split, python -m jaxtl.explain). "
                  f"Pointing game: the fraction of explained images whose map has its maximal "
                  f"cell's centre inside a known region (within the tolerance in each run's "
                  f"localisation.json); random map: the same for a maximum on a uniformly "
                  f"random cell of the map; mass inside: the map's fraction inside the "
                  f"regions, against a uniform map's.")
    doc.table(["pretraining", "method", "images with regions", "pointing game", "random map",
               "mass inside", "uniform map", "not scored", "run"], body)
    gallery = [(f"{_label(row)}, {explanation.method}", explanation.overlays())
               for row, explanation in found]
    gallery = [(label, files) for label, files in gallery if files]
    if gallery:
        png, _ = figures.overlay_gallery(gallery)
        doc.figure(f"{slug}_overlays.png", png,
                   f"The first {explanations.OVERLAYS_PER_RUN} explained images of the "
                   f"{study.split} split in each chosen run (the same images wherever the runs "
                   f"were explained alike): the input and the map over it, its maximum as a "
                   f"white cross, known regions as green boxes.")


def _main_table(doc: Document, study: select.Study,
                points: Mapping[str, Sequence[select.Point]]) -> None:
    by_run = {row["run"]: row for row in study.rows}
    body = []
    for line, line_points in points.items():
        for p in line_points:
            rows = [by_run[run] for run in p.runs]
            if len(rows) == 1:
                value = with_ci(rows[0], study.split, study.metric)
            else:
                value = f"{fmt(p.y)} +- {fmt(p.spread)}"
            body.append([line, "all" if p.all_images else f"{p.x:g}", value,
                         ", ".join(fmt(v) for v in p.values) if len(rows) > 1 else "",
                         fmt(p.val), len(rows),
                         ", ".join(f"{r.get('best_epoch')} / {r.get('stop_epoch')}"
                                   for r in rows),
                         ", ".join(f"`{run}`" for run in p.runs)])
    metric_name = f"{study.split} {study.metric}"
    doc.table(["pretraining", "images per class",
               f"{metric_name}: mean +- SD over seeds (one run: [95% CI])", "each seed",
               f"val {study.metric} (mean)", "seeds", "best / stop epoch", "runs"], body)


def _bootstrap_notes(doc: Document, study: select.Study) -> None:
    """What the runs' results say about their intervals (few patients, undefined resamples)."""
    notes: dict[str, list[str]] = {}
    for row in study.rows:
        note = row.get(f"{study.split}.bootstrap_note")
        if isinstance(note, str):
            notes.setdefault(note, []).append(str(row["run"]))
    for note, runs in notes.items():
        doc.paragraph(f"Intervals of {len(runs)} run(s) ({', '.join(f'`{r}`' for r in runs[:3])}"
                      f"{' ...' if len(runs) > 3 else ''}): {note}.")


def _comparisons(doc: Document, sweep_dir: pathlib.Path, study: select.Study,
                 samples: int) -> None:
    found, notes = comparisons.study_comparisons(sweep_dir, study, samples)
    if not found and not notes:
        return
    doc.heading("Paired comparisons", level=3)
    doc.paragraph(
        f"At each training size, each pretraining source against random initialisation "
        f"(`none`) and the sources against each other, on the same {study.split} images: the "
        f"difference of the seed means of {study.metric} (A - B), its 95% interval and "
        f"p-value from {samples} paired resamples of patients (DeLong's test for a single "
        f"label's AUROC, clustered by patient as Obuchowski (1997) where a patient has "
        f"several images), then Holm's correction over the study's comparisons; the test "
        f"column names the test and the patients and images it ran on. The interval holds "
        f"the trained models fixed (it is about other test patients); the seeds' own "
        f"differences show the spread over training runs. "
        f"`python -m jaxtl.commands.compare RUN_A RUN_B` compares any two runs this way.")
    if found:
        doc.table(["images per class", "A", "B", "seeds", f"A {study.metric}",
                   f"B {study.metric}", "A - B", "95% CI", "p", "Holm p", "holds",
                   "A - B per seed", "test"],
                  [[c.size, c.a, c.b, c.seeds, *comparison.cells(c.result)[1:6],
                    comparison.p_text(c.holm_p), "yes" if c.holds else "no",
                    ", ".join(f"{d:+.3f}" for d in c.seed_differences), c.result.method]
                   for c in found])
    doc.paragraph(comparisons.summary(found, study.metric))
    for note in notes:
        doc.paragraph(f"Not compared: {note}")


def per_class_metrics(rows: Sequence[Mapping[str, Any]], split: str) -> dict[str, list[str]]:
    """{metric: [class or label names]} of the per-class/per-label metrics the rows hold
    (`<split>.recall.<class>`, `<split>.auroc.<label>`, ...)."""
    found: dict[str, list[str]] = {}
    for row in rows:
        for key, number in row.items():
            parts = key.split(".", 2)
            if (len(parts) == 3 and parts[0] == split and isinstance(number, (int, float))
                    and not key.endswith((".ci_low", ".ci_high"))
                    and not parts[1].startswith("bootstrap")):
                names = found.setdefault(parts[1], [])
                if parts[2] not in names:
                    names.append(parts[2])
    return {metric: names for metric, names in found.items() if len(names) > 1}


def _per_class_tables(doc: Document, study: select.Study, chosen: Sequence[Mapping]) -> None:
    for metric, names in per_class_metrics(chosen, study.split).items():
        doc.paragraph(f"{study.split} {metric} per class/label of the chosen runs:")
        doc.table([metric, *(_label(row) for row in chosen)],
                  [[name, *(with_ci(row, study.split, f"{metric}.{name}") for row in chosen)]
                   for name in names])


def _operating_points(doc: Document, sweep_dir: pathlib.Path,
                      chosen: Sequence[Mapping[str, Any]]) -> None:
    """Per chosen run and rule: the thresholds and the test rates (means over labels)."""
    body = []
    kind = ""
    for row in chosen:
        results = rundir.read_results(sweep_dir / str(row.get("workdir"))) or {}
        points = results.get("operating_points")
        if not points:
            continue
        kind = points["kind"]
        for rule in thresholds.RULES:
            rates = points["macro"].get(rule, {}).get("test", {})
            chosen_at = ", ".join(f"{name} {fmt(entry[rule]['threshold'], 2)}"
                                  for name, entry in points["labels"].items())
            body.append([_label(row), rule, chosen_at,
                         *(fmt(rates.get(rate)) for rate in thresholds.RATES)])
    if not body:
        return
    doc.paragraph(
        f"Operating points of the chosen runs ({kind}): `fixed` calls a case positive at "
        f"score >= 0.5; `f1` and `youden` use the thresholds that maximise F1 and Youden's J "
        f"on the validation split, applied unchanged to the test split. Test sensitivity, "
        f"specificity, precision and F1 are means over the "
        f"{'labels' if kind == 'per label' else 'classes'} (each one's values: "
        f"`operating_points` in results.json).")
    doc.table(["run", "rule", "thresholds", *(f"test {rate}" for rate in thresholds.RATES)],
              body)


def _label(row: Mapping[str, Any]) -> str:
    size = row.get(select.SIZE_KEY)
    return f"{row.get('pretrain')}, n={'all' if size == select.ALL else size}"


def _runs_section(doc: Document, rows: Sequence[Mapping[str, Any]]) -> None:
    doc.heading("All runs")
    keys = select.hyperparameter_keys(rows)
    header = ["run", "role", "status", "pretraining", *keys, "metric", "val [95% CI]",
              "test [95% CI]", "best / stop epoch", "wall time", "CPU time", "train images/s"]
    body = []
    for row in sorted(rows, key=lambda r: (r.get("role") != "grid", natural(str(r["run"])))):
        metric = str(row.get("eval.best_metric"))
        body.append([f"`{row.get('run')}`", row.get("role"), row.get("status"),
                     row.get("pretrain"), *[row.get(key) for key in keys], metric,
                     with_ci(row, "val", metric), with_ci(row, "test", metric),
                     f"{row.get('best_epoch')} / {row.get('stop_epoch')}",
                     _seconds(row.get("wall_seconds")), _seconds(row.get("cpu_seconds")),
                     fmt(row.get("train_images_per_second"), 1)])
    doc.paragraph("Hyperparameters shown are those that differ between runs; every setting of "
                  "every run is in results.csv.")
    doc.table(header, body)
    failed = [row for row in rows if row.get("status") not in ("done", "pending", "running")]
    if failed:
        doc.heading("Runs that did not finish", level=3)
        doc.table(["run", "status", "error"],
                  [[f"`{row.get('run')}`", row.get("status"), row.get("error")] for row in failed])
