"""Paired comparisons of saved runs: the same images required, DeLong for one label's AUROC
(clustered by patient where patients have several images), the paired bootstrap for other
metrics, and the program's table and errors."""

from __future__ import annotations

import numpy as np
import pytest
from programs import run_programs
from scipy.special import expit

from jaxtl.core import tasks
from jaxtl.core.errors import UserError
from jaxtl.metrics import task_metrics
from jaxtl.metrics.delong import CLUSTERED_DELONG, DELONG, contrast_test
from jaxtl.report import paired_runs as comparison
from jaxtl.workdir import files as rundir

N = 120
RNG = np.random.default_rng(0)
LABELS = (RNG.uniform(size=(N, 2)) < 0.4).astype(np.int64)
LABELS[::9, 1] = tasks.MASKED
TASK = tasks.multilabel(["x", "y"])


def write_run(folder, strength, labels=LABELS, ids=None, images_per_patient=2):
    logits = RNG.normal(size=(N, 2)) + strength * (labels == 1)
    rundir.write_results(folder, {"task": {"kind": "multilabel", "names": ["x", "y"],
                                           "three_way": [False, False], "parents": [-1, -1]}})
    rundir.save_predictions(folder, "test", labels=labels, scores=expit(logits),
                            names=TASK.names,
                            image_ids=ids if ids is not None else [f"i{i}" for i in range(N)],
                            patients=[f"p{i // images_per_patient}" for i in range(N)])
    return folder, logits


def test_one_labels_auroc_by_delong_and_means_by_the_paired_bootstrap(tmp_path):
    (a_dir, a_logits), (b_dir, b_logits) = (write_run(tmp_path / "a", 2.0),
                                            write_run(tmp_path / "b", 0.7))
    a, b = comparison.load(a_dir), comparison.load(b_dir)
    result = {d.metric: d for d in comparison.compare([a], [b], samples=100)}
    keep = LABELS[:, 0] != tasks.MASKED
    patients = np.array([f"p{i // 2}" for i in range(N)])[keep]
    direct = contrast_test(np.stack([a.scores[keep, 0], b.scores[keep, 0]]),
                           LABELS[keep, 0] == 1, [1, -1], patients)
    assert direct.test == CLUSTERED_DELONG
    found = result["auroc/x"]
    assert found.test == CLUSTERED_DELONG and found.method.startswith(CLUSTERED_DELONG)
    assert (found.patients, found.images) == (len(set(patients)), keep.sum())
    assert f"{len(set(patients))} patients, {keep.sum()} images" in found.method
    assert found.p_value == pytest.approx(direct.p_value)
    assert result["mean_auroc"].test == comparison.BOOTSTRAP
    assert result["mean_auroc"].method.startswith(comparison.BOOTSTRAP)
    assert (result["mean_auroc"].patients, result["mean_auroc"].images) == (N // 2, N)
    for side, logits in ((result["mean_auroc"].a, a_logits), (result["mean_auroc"].b, b_logits)):
        assert side == pytest.approx(task_metrics(TASK, LABELS, logits)["mean_auroc"])
    assert result["mean_auroc"].difference > 0 and result["mean_auroc"].ci[0] > 0


def test_one_image_per_patient_runs_image_level_delong(tmp_path):
    a = comparison.load(write_run(tmp_path / "a", 2.0, images_per_patient=1)[0])
    b = comparison.load(write_run(tmp_path / "b", 0.7, images_per_patient=1)[0])
    (found,) = comparison.compare([a], [b], ["auroc/x"])
    keep = LABELS[:, 0] != tasks.MASKED
    direct = contrast_test(np.stack([a.scores[keep, 0], b.scores[keep, 0]]),
                           LABELS[keep, 0] == 1, [1, -1])
    assert found.test == DELONG and found.method.startswith(f"{DELONG} (")
    assert found.p_value == pytest.approx(direct.p_value)
    assert found.patients == found.images == keep.sum()


def test_runs_with_other_images_or_labels_are_refused(tmp_path):
    a = comparison.load(write_run(tmp_path / "a", 1.0)[0])
    other_labels = LABELS.copy()
    other_labels[0, 0] = tasks.MASKED
    b = comparison.load(write_run(tmp_path / "b", 1.0, labels=other_labels)[0])
    with pytest.raises(UserError, match="different labels"):
        comparison.compare([a], [b], samples=10)
    c = comparison.load(write_run(tmp_path / "c", 1.0, ids=[f"j{i}" for i in range(N)])[0])
    with pytest.raises(UserError, match="different images"):
        comparison.compare([a], [c], samples=10)


def test_the_program_prints_the_table_and_one_line_errors(tmp_path):
    # Sweep folder names hold commas; several folders of one side are joined by ':'.
    a = write_run(tmp_path / "init=pre,n=10,seed=0", 2.0)[0]
    a2 = write_run(tmp_path / "init=pre,n=10,seed=1", 2.0)[0]
    b = write_run(tmp_path / "init=none,n=10,seed=0", 0.5)[0]
    argv = [f"{a}:{a2}", str(b), "--samples", "50", "--metrics", "mean_ap,auroc/y"]
    done, failed = run_programs([("jaxtl.commands.compare", argv),
                                 ("jaxtl.commands.compare", [argv[0], str(tmp_path / "missing")])])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "A - B" in done.stdout and "auroc/y" in done.stdout
    assert f"{CLUSTERED_DELONG} ({N // 2} patients" in done.stdout
    assert f"A: {a}, {a2}\nB: {b}\n" in done.stdout
    assert failed.returncode == 2 and failed.stderr.startswith("error: ")
