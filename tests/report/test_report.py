"""The report from a synthetic results table: what it selects, draws and writes."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import pathlib
import re

import numpy as np
import pytest
from PIL import Image
from sklearn import metrics as skm

from jaxtl import report
from jaxtl.core import tasks
from jaxtl.core.errors import UserError
from jaxtl.metrics.multiple import holm
from jaxtl.metrics.thresholds import operating_points
from jaxtl.report import explanations, figures, select
from jaxtl.report import paired_runs as comparison
from jaxtl.report import study_tests as comparisons
from jaxtl.report.build import explanations_section
from jaxtl.report.document import Document
from jaxtl.sweep import table
from jaxtl.workdir import files as rundir

CLASSES = ["0", "1", "2", "3", "4"]


def row(run, pretrain, n, lr, val, test, *, arch="resnet18", optim="sgd", status="done",
        ci=0.05):
    return {
        "run": run, "role": "grid", "status": status, "error": None, "pretrain": pretrain,
        "workdir": run, "demo": True, "dataset": "eyepacs", "jaxtl_version": "0.1.0",
        "git_commit": "0123456789abcdef", "git_dirty": False, "best_epoch": 3,
        "stop_epoch": 4, "wall_seconds": 60.0, "train_images_per_second": 30.0,
        "eval.best_metric": "kappa", "data.train_per_class": n, "optim.lr": lr,
        "model.arch": arch, "optim.name": optim, "data.root": "",
        "split_sizes.train": 500,
        **{f"{split}.{key}": (None if value is None else value + shift)
           for split, value in (("val", val), ("test", test))
           for key, shift in (("kappa", 0.0), ("kappa.ci_low", -ci), ("kappa.ci_high", ci))},
        "test.confusion_matrix": np.diag([10, 5, 4, 2, 1]).tolist(),
        **{f"test.recall.{name}": 1.0 for name in CLASSES},
    }


def synthetic_rows():
    rows = []
    for pretrain, offset in (("none", 0.0), ("pre", 0.2)):
        for n in (10, 30, -1):
            base = {10: 0.3, 30: 0.4, -1: 0.5}[n] + offset
            # The lr=0.1 run is better on test but worse on validation: it must not be shown.
            rows.append(row(f"{pretrain}-{n}-a", pretrain, n, 0.01, val=base, test=base))
            rows.append(row(f"{pretrain}-{n}-b", pretrain, n, 0.1, val=base - 0.1,
                            test=base + 0.3, optim="adam"))
    rows.append(row("broken", "none", 10, 0.5, val=None, test=None, status="failed"))
    rows[-1]["error"] = "config.optim.lr is too large"
    rows.append({**row("pre", "none", -1, 0.01, val=0.7, test=0.7), "role": "source"})
    return rows


def test_points_are_the_best_validation_run_of_each_cell():
    rows = synthetic_rows()
    (study,) = select.studies(rows)
    assert (study.dataset, study.metric, study.split) == ("eyepacs", "kappa", "test")
    assert len(study.rows) == 12  # grid runs that finished: no failed run, no source
    lines = select.series(list(study.rows), study)
    assert [p.run for p in lines["pre"]] == ["pre-10-a", "pre-30-a", "pre--1-a"]
    assert [p.y for p in lines["none"]] == pytest.approx([0.3, 0.4, 0.5])
    assert lines["none"][0].ci == pytest.approx((0.25, 0.35))
    # 'all' (-1) sits at the mean images per class: 500 training images / 5 classes.
    assert lines["none"][-1].x == 100.0 and lines["none"][-1].all_images
    chosen = select.chosen_runs(study)
    assert [r["run"] for r in chosen] == ["none--1-a", "pre--1-a"]


def test_metric_figure_draws_one_line_per_source_and_panels_per_value():
    (study,) = select.studies(synthetic_rows())
    png, drawn = figures.metric_vs_size(study, select.panels(study, "optim.name"), "optimizer")
    assert Image.open(io.BytesIO(png)).format == "PNG"
    assert set(drawn) == {"adam", "sgd"}
    points = drawn["adam"]["pre"]  # within the adam panel only the adam runs are shown
    assert [x for x, _, _, _ in points] == [10, 30, 100]
    assert [y for _, y, _, _ in points] == pytest.approx([0.8, 0.9, 1.0])
    assert [run for _, _, _, run in points] == ["pre-10-b", "pre-30-b", "pre--1-b"]


def test_roc_and_precision_recall_match_scikit_learn_micro_averages():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 200)
    scores = rng.dirichlet(np.ones(5), 200) + np.eye(5)[labels] * 0.3
    scores /= scores.sum(axis=1, keepdims=True)
    _, drawn = figures.roc_pr([("run", labels, scores)], "test")
    one_hot = np.eye(5)[labels]
    assert drawn["run"]["auroc"] == pytest.approx(
        skm.roc_auc_score(one_hot, scores, average="micro"))
    assert drawn["run"]["ap"] == pytest.approx(
        skm.average_precision_score(one_hot, scores, average="micro"))
    binary = rng.integers(0, 2, 100)
    two = np.stack([1 - binary * 0.6, binary * 0.6 + 0.2], axis=1)
    _, drawn = figures.roc_pr([("b", binary, two)], "test")
    assert drawn["b"]["auroc"] == pytest.approx(skm.roc_auc_score(binary, two[:, 1]))
    multilabel = np.array([[1, 0], [0, -1], [1, 1], [0, 0]])
    ml_scores = np.array([[0.9, 0.2], [0.1, 0.99], [0.6, 0.7], [0.4, 0.1]])
    targets, flat, _ = figures.binary_view(multilabel, ml_scores)
    assert targets.tolist() == [True, False, False, True, True, False, False]  # -1 left out
    assert flat.tolist() == [0.9, 0.2, 0.1, 0.6, 0.7, 0.4, 0.1]


TEST_LABELS = np.random.default_rng(1).integers(0, 5, 60)


def write_run_folder(folder, strength, seed):
    """What a finished run leaves for the report: predictions on the shared test images and
    results.json with the task and operating points."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(60, 5)) + strength * np.eye(5)[TEST_LABELS]
    scores = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    rundir.save_predictions(folder, "test", labels=TEST_LABELS, scores=scores, names=CLASSES,
                            image_ids=[f"img{i}" for i in range(60)],
                            patients=[f"p{i // 2}" for i in range(60)])
    task = tasks.multiclass(CLASSES)
    rundir.write_results(folder, {
        "task": {"kind": "multiclass", "names": CLASSES, "three_way": [], "parents": []},
        "operating_points": operating_points(task, (TEST_LABELS, scores),
                                             (TEST_LABELS, scores))})


def write_sweep_dir(tmp_path):
    rows = synthetic_rows()
    table.write(tmp_path, rows)
    (tmp_path / "sweep.json").write_text(json.dumps({"sweep_file": "configs/sweeps/demo.py",
                                                     "description": "A synthetic sweep."}))
    for seed, row in enumerate(rows):
        if row["role"] == "grid" and row["status"] == "done":
            write_run_folder(tmp_path / row["workdir"], 2.5 if row["pretrain"] == "pre" else 0.5,
                             seed)
    for name in ("none--1-a", "pre--1-a"):
        folder = tmp_path / name
        (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
            {"step": 5, "split": "train", "loss": 1.5, "epoch": 1.0},
            {"step": 5, "split": "val", "kappa": 0.2, "epoch": 1},
            {"step": 10, "split": "train", "loss": 1.1, "epoch": 2.0},
            {"step": 10, "split": "val", "kappa": 0.4, "epoch": 2}]))
    return rows


def test_report_writes_markdown_with_figures_and_a_self_contained_html(tmp_path):
    write_sweep_dir(tmp_path)
    paths = report.render(tmp_path, comparison_samples=50)
    markdown = paths["markdown"].read_text()
    html = paths["html"].read_text()
    assert paths["markdown"].parent == tmp_path / "report"
    assert "DEMO" in markdown and "A synthetic sweep." in markdown
    figures_md = re.findall(r"!\[[^]]*\]\(([^)]+\.png)\)", markdown)
    assert figures_md == ["eyepacs_main.png", "eyepacs_per_model.png",
                          "eyepacs_per_optimizer.png", "eyepacs_roc_pr.png",
                          "eyepacs_reliability.png", "eyepacs_confusion.png",
                          "eyepacs_learning_curves.png"]
    assert all((tmp_path / "report" / name).is_file() for name in figures_md)
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == len(figures_md)
    for data in images:
        Image.open(io.BytesIO(base64.b64decode(data))).verify()
    assert not re.search(r'(src|href)="(http|//|[^"#d])', html)  # nothing fetched
    # The main table: the validation-selected run and its test kappa with the interval.
    assert "| pre | 10 | 0.500 [0.450, 0.550] |  | 0.500 | 1 | 3 / 4 | `pre-10-a` |" in markdown
    assert "| none | all | 0.500 [0.450, 0.550]" in markdown
    assert "`pre-10-b`" in markdown  # listed among all runs, not chosen for the figure
    assert "| `broken` | failed | config.optim.lr is too large |" in markdown
    assert "0.800 [0.750, 0.850]" in html
    assert "No explanations of the test split" in markdown  # and how to make them:
    assert "python -m jaxtl.explain --workdir RUN --split test" in markdown


def test_report_from_run_folders_writes_the_table_first(tmp_path):
    folder = tmp_path / "only"
    folder.mkdir()
    (folder / "sweep_run.json").write_text(json.dumps({"name": "only", "role": "grid",
                                                       "status": "failed", "error": "boom"}))
    paths = report.render(tmp_path, tmp_path / "out")
    assert (tmp_path / table.RESULTS_JSONL).is_file()
    assert "No grid run has finished yet" in paths["markdown"].read_text()


def test_multilabel_study_has_per_label_table_and_curves_but_no_confusion_matrix(tmp_path):
    labels = ("Edema", "Effusion")
    rows = []
    for pretrain, auroc in (("none", 0.7), ("imagenet", 0.8)):
        rows.append({
            "run": f"{pretrain}-run", "role": "grid", "status": "done", "pretrain": pretrain,
            "workdir": f"{pretrain}-run", "dataset": "chexpert", "data.task": "competition5",
            "eval.best_metric": "mean_auroc", "data.train_per_class": 50,
            "model.arch": "densenet121", "optim.name": "adam",
            "val.mean_auroc": auroc, "test.mean_auroc": auroc,
            "test.mean_auroc.ci_low": auroc - 0.1, "test.mean_auroc.ci_high": auroc + 0.1,
            **{f"test.auroc.{name}": auroc for name in labels},
            **{f"test.auroc.{name}.ci_low": auroc - 0.05 for name in labels},
            **{f"test.auroc.{name}.ci_high": auroc + 0.05 for name in labels}})
        folder = tmp_path / f"{pretrain}-run"
        folder.mkdir()
        np.savez(folder / "predictions_test.npz", labels=np.array([[1, 0], [0, -1], [1, 1],
                                                                   [0, 2]]),
                 scores=np.array([[0.9, 0.2], [0.3, 0.5], [0.6, 0.7], [0.4, 0.6]]),
                 names=np.array(labels))
    table.write(tmp_path, rows)
    markdown = report.render(tmp_path)["markdown"].read_text()
    assert "## chexpert / competition5: test mean_auroc" in markdown
    assert "| imagenet | 50 | 0.800 [0.700, 0.900] |" in markdown
    assert "| auroc | imagenet, n=50 | none, n=50 |" in markdown
    assert "| Edema | 0.800 [0.750, 0.850] | 0.700 [0.650, 0.750] |" in markdown
    assert "chexpert_competition5_roc_pr.png" in markdown
    assert "confusion" not in markdown


def write_explanation(workdir: pathlib.Path, method: str, overall: dict, colour: tuple,
                      not_scored: str | None = None) -> None:
    """An explanation folder as python -m jaxtl.explain leaves it: localisation.json and
    overlays (here solid colours, to be found in the report's gallery)."""
    folder = rundir.explanation_dir(workdir, "test", method)
    (folder / rundir.EXPLAIN_OVERLAYS_DIR).mkdir(parents=True)
    for n in range(4):
        Image.new("RGB", (40, 20), colour).save(
            folder / rundir.EXPLAIN_OVERLAYS_DIR / f"{n:05d}_{n}_left_predicted.png")
    (folder / rundir.EXPLAIN_LOCALISATION_FILE).write_text(json.dumps(
        {"method": method, "localisation": {"overall": overall, "per_target": {}},
         "not_scored": not_scored}))


def test_report_shows_the_chosen_runs_pointing_game_and_overlays(tmp_path):
    rows = write_sweep_dir(tmp_path)
    scored = {"images": 50, "hits": 31, "pointing_game": 0.62, "random_map": 0.125,
              "mass_inside": 0.41, "uniform_map_mass": 0.08}
    write_explanation(tmp_path / "pre--1-a", "gradcam", scored, (255, 0, 0))
    write_explanation(tmp_path / "none--1-a", "gradcam", {"images": 0}, (0, 0, 255),
                      not_scored="no regions are known for this dataset")
    write_explanation(tmp_path / "pre-10-a", "gradcam", scored, (0, 255, 0))  # not chosen
    (tmp_path / "none--1-a" / "explain" / "val_gradcam").mkdir()  # another split, unfinished
    (study,) = select.studies(rows)
    doc = Document("report")
    explanations_section(doc, tmp_path, study, select.chosen_runs(study), "eyepacs")
    markdown = doc.markdown()
    assert ("| pre, n=all | gradcam | 50 | 0.620 | 0.125 | 0.410 | 0.080 |  | `pre--1-a` |"
            in markdown)
    assert ("| none, n=all | gradcam | 0 |  |  |  |  | no regions are known for this dataset "
            "| `none--1-a` |" in markdown)
    assert len([line for line in markdown.splitlines() if "| gradcam |" in line]) == 2
    (gallery,) = doc.figures
    assert gallery.file == "eyepacs_overlays.png"
    colours = {colour for _, colour in
               Image.open(io.BytesIO(gallery.png)).convert("RGB").getcolors(1 << 16)}
    assert {(255, 0, 0), (0, 0, 255)} <= colours and (0, 255, 0) not in colours
    _, drawn = figures.overlay_gallery(
        [("pre", explanations.of_run(tmp_path / "pre--1-a", "test")[0].overlays())])
    assert drawn == {"pre": [f"{n:05d}_{n}_left_predicted.png" for n in range(3)]}


def test_seeds_of_a_configuration_are_one_point_with_mean_spread_and_every_value():
    rows = []
    for seed, (val, test) in enumerate([(0.5, 0.6), (0.6, 0.7), (0.7, 0.9)]):
        rows.append({**row(f"a-s{seed}", "none", 10, 0.01, val=val, test=test), "train.seed": seed})
        # another lr: better on test, worse on validation on average: never shown
        rows.append({**row(f"b-s{seed}", "none", 10, 0.1, val=val - 0.2, test=1.0),
                     "train.seed": seed})
    (study,) = select.studies(rows)
    (point,) = select.series(list(study.rows), study)["none"]
    assert point.runs == ("a-s0", "a-s1", "a-s2")
    assert point.y == pytest.approx(np.mean([0.6, 0.7, 0.9]))
    assert point.spread == pytest.approx(np.std([0.6, 0.7, 0.9], ddof=1))
    assert point.values == pytest.approx((0.6, 0.7, 0.9)) and point.ci is None
    assert point.val == pytest.approx(0.6)


def test_comparisons_pair_sources_at_each_size_with_holm_and_say_which_hold(tmp_path):
    rows = write_sweep_dir(tmp_path)
    (study,) = select.studies(rows)
    found, notes = comparisons.study_comparisons(tmp_path, study, samples=200)
    assert not notes
    assert [(c.size, c.a, c.b) for c in found] == [("10", "pre", "none"), ("30", "pre", "none"),
                                                    ("all", "pre", "none")]
    first = found[0]
    (direct,) = comparison.compare([comparison.load(tmp_path / "pre-10-a")],
                                   [comparison.load(tmp_path / "none-10-a")], ["kappa"],
                                   samples=200)
    assert first.result == direct
    assert [c.holm_p for c in found] == pytest.approx(holm([c.result.p_value for c in found]))
    markdown = report.render(tmp_path, comparison_samples=200)["markdown"].read_text()
    assert "### Paired comparisons" in markdown and comparisons.summary(found, "kappa") in markdown
    assert first.holds and "these differences in kappa hold: pre - none at 10" in markdown
    assert first.result.test == comparison.BOOTSTRAP  # kappa; the table names the test
    assert "resamples of 30 patients, 60 images)" in first.result.method
    assert f"| {first.result.method} |" in markdown
    assert "| none, n=all | youden |" in markdown  # operating points of the chosen runs


def test_runs_named_for_the_curves_must_exist(tmp_path):
    write_sweep_dir(tmp_path)
    with pytest.raises(UserError, match=r"--runs init=x,n=10: no run of .* has that name"):
        report.render(tmp_path, chosen=["pre-10-a", "init=x,n=10"], comparison_samples=20)


def segmentation_row(run, pretrain, tiles, dice, pq):
    return {"run": run, "role": "grid", "status": "done", "pretrain": pretrain, "workdir": run,
            "dataset": "consep_seg", "data.task": "type4", "eval.best_metric": "dice_nuclei",
            "data.train_per_class": tiles, "split_sizes.train": tiles,
            **{f"{split}.{key}": value for split in ("val", "test")
               for key, value in (("dice_nuclei", dice), ("dice_nuclei_tile_mean", dice - 0.1),
                                  ("pq", pq), ("aji", pq - 0.05),
                                  ("dice_mean", dice - 0.2), ("pq.ci_low", pq - 0.02),
                                  ("pq.ci_high", pq + 0.02))}}


def test_segmentation_study_plots_dice_and_pq_per_training_tiles_and_shows_masks(tmp_path):
    from jaxtl.report import segmentation as segmentation_report

    rows = [segmentation_row(f"{source}-{tiles}", source, tiles, dice + tiles / 100, pq)
            for source, dice, pq in (("none", 0.5, 0.3), ("patches", 0.7, 0.5))
            for tiles in (3, 24)]
    for run, colour in (("none-24", (255, 0, 0)), ("patches-24", (0, 0, 255)),
                        ("patches-3", (0, 255, 0))):
        folder = tmp_path / run / rundir.SEGMENTATION_OVERLAYS_DIR / "test"
        folder.mkdir(parents=True)
        Image.new("RGB", (24, 8), colour).save(folder / "test_1.png")
    (study,) = select.studies(rows)
    assert segmentation_report.applies(study) and study.metric == "dice_nuclei"
    doc = Document("report")
    segmentation_report.section(doc, tmp_path, study, (), "consep_seg")
    markdown = doc.markdown()
    assert ("| patches | 24 | 0.940 | 0.840 | 0.500 [0.480, 0.520] | 0.450 | 0.740 "
            "| `patches-24` |") in markdown
    assert ("nuclei Dice pooled over tiles (`dice_nuclei`) [95% CI] | test nuclei Dice, mean "
            "over tiles as HoVer-Net (`dice_nuclei_tile_mean`) [95% CI]") in markdown
    assert [figure.file for figure in doc.figures] == [
        "consep_seg_dice_nuclei.png", "consep_seg_pq.png", "consep_seg_masks.png"]
    colours = {colour for _, colour in
               Image.open(io.BytesIO(doc.figures[-1].png)).convert("RGB").getcolors(1 << 16)}
    assert {(255, 0, 0), (0, 0, 255)} <= colours and (0, 255, 0) not in colours  # 24 tiles only
    _, drawn = figures.metric_vs_size(dataclasses.replace(study, metric="pq"),
                                      {"consep_seg": rows}, size_label="training tiles")
    assert drawn["consep_seg"]["patches"][0][:2] == (3.0, 0.5)
