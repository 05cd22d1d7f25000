"""The report of one run folder: what it draws and writes, that its HTML page holds every
figure as a PNG of the size it lays out (tests/html_pages.py), and that headless Chromium draws
every figure where the page lays it out (tests/headless_chromium.py)."""

from __future__ import annotations

import json
import pathlib
import re

import numpy as np
import pytest
from headless_chromium import screenshot
from html_pages import html_figures
from PIL import Image
from programs import run_programs
from sklearn import metrics as skm

from jaxtl import report
from jaxtl.report import figures
from jaxtl.workdir import files as rundir


def write_run(folder: pathlib.Path, *, multilabel: bool = False) -> dict:
    """A finished run folder as the training loop leaves it (results.json, metrics.jsonl,
    predictions_test.npz), with numbers made up."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    (folder / rundir.CONFIG_FILE).write_text("{}")
    if multilabel:
        names = ["Edema", "Effusion", "Rare"]
        labels = rng.integers(0, 2, (60, 3))
        labels[:, 2] = 0  # no positive: no curve for this label
        labels[:5, 0] = -1  # masked entries leave the curves
        scores = np.clip(labels * 0.4 + rng.uniform(0, 0.6, (60, 3)), 0, 1)
        task = {"kind": "multilabel", "names": names, "three_way": [False] * 3,
                "parents": [-1] * 3}
        test = {"mean_auroc": 0.8, "mean_auroc_ci": [0.7, 0.9],
                "auroc": {"Edema": 0.81, "Effusion": 0.79},
                "auroc_ci": {"Edema": [0.7, 0.9], "Effusion": None}}
        metric = "mean_auroc"
    else:
        names = ["grade_0", "grade_1", "grade_2"]
        labels = rng.integers(0, 3, 60)
        scores = rng.dirichlet(np.ones(3), 60)
        scores[np.arange(60), labels] += 1.0
        scores /= scores.sum(axis=1, keepdims=True)
        task = {"kind": "multiclass", "names": names, "three_way": [], "parents": []}
        test = {"kappa": 0.6123, "kappa_ci": [0.5, 0.7], "accuracy": 0.7, "accuracy_ci": None,
                "recall": {"grade_0": 0.5, "grade_1": 0.6, "grade_2": 0.9},
                "recall_ci": {"grade_0": [0.4, 0.6], "grade_1": [0.5, 0.7],
                              "grade_2": [0.8, 1.0]},
                "confusion_matrix": skm.confusion_matrix(labels, scores.argmax(1)).tolist()}
        metric = "kappa"
    test |= {"ci_level": 0.95, "bootstrap_samples": 20, "count": 60}
    results = {"demo": True, "dataset": "eyepacs", "task": task, "best_epoch": 2, "epochs": 3,
               "jaxtl_version": "0.1.0", "optimizer": "sgd", "calibration": None,
               "split_sizes": {"train": 100, "val": 60, "test": 60},
               "val": {**test, metric: 0.55, f"{metric}_ci": [0.45, 0.65]}, "test": test,
               "config": {"eval": {"best_metric": metric}, "model": {"arch": "resnet18"}}}
    (folder / rundir.RESULTS_FILE).write_text(json.dumps(results))
    (folder / rundir.METRICS_FILE).write_text("".join(
        json.dumps(record) + "\n" for record in
        [{"step": s, "split": "train", "epoch": s / 5, "loss": 1.0 / s} for s in range(1, 16)]
        + [{"step": 5 * e, "split": "val", "epoch": e, metric: 0.4 + 0.1 * e}
           for e in (1, 2, 3)]))
    np.savez(rundir.predictions_file(folder, "test"), labels=labels, scores=scores,
             names=np.array(names))
    return results


@pytest.fixture(scope="module")
def multiclass_report(tmp_path_factory) -> tuple[pathlib.Path, dict[str, pathlib.Path]]:
    """A multiclass run folder and the paths of the report rendered into it."""
    folder = tmp_path_factory.mktemp("multiclass") / "run"
    write_run(folder)
    return folder, report.render_run(folder)


def test_run_report_has_headline_curves_confusion_reliability_and_per_class_table(
        multiclass_report):
    folder, paths = multiclass_report
    assert paths["html"].parent == folder / "report"
    markdown = paths["markdown"].read_text()
    assert "DEMO" in markdown
    assert "| test | 0.612 [0.500, 0.700] | 20 resamples (95% CI) |" in markdown
    assert "| accuracy | 0.700 | 0.700 |" in markdown  # no interval: the value alone
    assert "| grade_2 | 0.900 [0.800, 1.000] |" in markdown
    drawn = [alt for alt, _ in html_figures(paths["html"].read_text())]
    assert drawn == ["learning_curves.png", "confusion.png", "roc_pr.png", "reliability.png"]
    assert re.findall(r"!\[[^]]*\]\(([^)]+\.png)\)", markdown) == drawn
    for name in drawn:
        with Image.open(folder / "report" / name) as image:
            assert image.format == "PNG"


def on_background(image: Image.Image, background: np.ndarray) -> np.ndarray:
    """The RGB pixels of an image drawn over a background colour (alpha composited)."""
    backdrop = Image.new("RGBA", image.size, tuple(int(v) for v in background))
    return np.asarray(Image.alpha_composite(backdrop, image.convert("RGBA")).convert("RGB"))


def test_run_report_renders_in_headless_chromium_with_every_figure_where_it_is_laid_out(
        multiclass_report, tmp_path):
    _, paths = multiclass_report
    layout = screenshot(paths["html"], tmp_path / "page.png")
    figures_in_page = html_figures(paths["html"].read_text())
    assert "Chrome/" in layout.user_agent
    assert [box.alt for box in layout.images] == [alt for alt, _ in figures_in_page]
    assert all(box.decoded for box in layout.images)
    with Image.open(tmp_path / "page.png") as page:
        shot = np.asarray(page.convert("RGB")).astype(int)
    assert shot.shape[:2] == (layout.height, layout.width)  # the whole page, not the viewport
    packed = (shot[..., 0] << 16) | (shot[..., 1] << 8) | shot[..., 2]  # one int per colour
    colours, counts = np.unique(packed, return_counts=True)
    background = (colours[counts.argmax()] >> np.array([16, 8, 0])) & 0xFF  # the most common
    off_background = np.any(shot != background, axis=-1)
    outside_figures = off_background.copy()
    for box, (alt, image) in zip(layout.images, figures_in_page, strict=True):
        assert (box.width, box.height) == image.size, alt  # drawn at its own size
        expected = on_background(image, background).astype(int)
        # Chromium snaps a box at a fractional CSS pixel to the pixel below or above it.
        crops = {(top, left): shot[top:top + image.height, left:left + image.width]
                 for top in (int(np.floor(box.top)), int(np.floor(box.top)) + 1)
                 for left in (int(np.floor(box.left)), int(np.floor(box.left)) + 1)}
        (top, left), crop = min(crops.items(),
                                key=lambda item: np.abs(item[1] - expected).mean())
        assert crop.shape == expected.shape, alt  # inside the screenshot
        assert np.abs(crop - expected).mean() < 1.0, alt  # the figure, pixel for pixel
        assert off_background[top:top + image.height, left:left + image.width].mean() > 0.05
        outside_figures[top:top + image.height, left:left + image.width] = False
    assert outside_figures.mean() > 0.005  # the page's text and tables are drawn too


def test_multilabel_run_report_draws_one_curve_per_label_as_scikit_learn(tmp_path):
    write_run(tmp_path / "run", multilabel=True)
    paths = report.render_run(tmp_path / "run", tmp_path / "out")
    drawn = [alt for alt, _ in html_figures(paths["html"].read_text())]
    assert drawn == ["learning_curves.png", "roc_pr.png", "reliability.png"]  # no confusion
    markdown = paths["markdown"].read_text()
    assert "| Edema | 0.810 [0.700, 0.900] |" in markdown and "| Effusion | 0.790 |" in markdown
    assert "No curve where those entries hold one class only: Rare." in markdown
    with np.load(rundir.predictions_file(tmp_path / "run", "test")) as saved:
        labels, scores = saved["labels"], saved["scores"]
    _, per_label = figures.roc_pr_per_label(labels, scores, ["Edema", "Effusion", "Rare"], "t")
    assert per_label["Rare"] is None
    for column, name in enumerate(("Edema", "Effusion")):
        keep = labels[:, column] >= 0
        assert per_label[name]["auroc"] == skm.roc_auc_score(labels[keep, column],
                                                             scores[keep, column])
        assert per_label[name]["ap"] == skm.average_precision_score(labels[keep, column],
                                                                    scores[keep, column])


def test_report_command_reports_a_run_and_refuses_what_it_cannot_report(tmp_path):
    write_run(tmp_path / "run")
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / rundir.CONFIG_FILE).write_text("{}")
    (tmp_path / "empty").mkdir()
    done, missing, empty, unfinished = run_programs(
        [("jaxtl.report", [str(tmp_path / name)])
         for name in ("run", "nothing", "empty", "unfinished")])
    assert done.returncode == 0, done.stderr[-2000:]
    assert str(tmp_path / "run" / "report" / "report.html") in done.stdout
    assert missing.returncode == 2
    assert "is not a folder; pass the --workdir of a sweep" in missing.stderr
    assert empty.returncode == 2
    assert "holds no runs of a sweep" in empty.stderr
    assert unfinished.returncode == 2 and not unfinished.traceback
    assert "has not finished (no results.json)" in unfinished.stderr
