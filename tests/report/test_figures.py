"""The reliability figure before and after temperature scaling: what it draws for each run is
the saved scores' and the rescaled scores' reliability, as results.json's temperatures give
them."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from jaxtl.core import tasks
from jaxtl.metrics import temperature
from jaxtl.metrics.calibration import expected_calibration_error
from jaxtl.report import figures


def results_of(task: tasks.Task, temperatures) -> dict:
    return {"task": {"kind": task.kind, "names": list(task.names),
                     "three_way": list(task.three_way), "parents": list(task.parents)},
            "calibration": temperature.record(task, temperatures, fitted_on="val")}


def test_the_dashed_curve_is_the_reliability_of_the_rescaled_scores():
    rng = np.random.default_rng(0)
    task = tasks.multiclass("abc")
    z = rng.normal(size=(300, 3))
    labels = np.array([rng.choice(3, p=p) for p in softmax(z, axis=1)])
    scores = softmax(4 * z, axis=1)  # overconfident by T = 4
    rescaled = figures.temperature_scaled(results_of(task, [4.0]), scores)
    np.testing.assert_allclose(rescaled, softmax(z, axis=1), rtol=1e-9)
    assert figures.temperature_scaled({"task": {}, "calibration": None}, scores) is None

    _, drawn = figures.reliability_diagram([("run", labels, scores)], "test",
                                           {"run": rescaled})
    assert set(drawn) == {"run", "run, temperature-scaled"}
    for name, values in (("run", scores), ("run, temperature-scaled", rescaled)):
        expected = expected_calibration_error(values.max(1), values.argmax(1) == labels)
        assert drawn[name]["ece"] == pytest.approx(expected), name
        assert sum(drawn[name]["count"]) == len(labels)
    assert drawn["run, temperature-scaled"]["ece"] < drawn["run"]["ece"]
    _, unscaled = figures.reliability_diagram([("run", labels, scores)], "test")
    assert set(unscaled) == {"run"}


def test_multilabel_temperatures_rescale_each_label():
    task = tasks.multilabel(["x", "y"])
    logits = np.random.default_rng(1).normal(size=(40, 2)) * 3
    rescaled = figures.temperature_scaled(results_of(task, [2.0, None]), task.scores(logits))
    np.testing.assert_allclose(rescaled, task.scores(logits / [2.0, 1.0]), rtol=1e-9)


def test_the_trainable_parameters_figure_draws_every_run_at_its_count():
    from jaxtl.report import select

    def row(name, arch, trainable, kappa, **config):
        return {"run": name, "status": "done", "dataset": "eyepacs", "role": "grid",
                "eval.best_metric": "kappa", "model.arch": arch, "test.kappa": kappa,
                "test.kappa.ci_low": kappa - 0.05, "test.kappa.ci_high": kappa + 0.05,
                "val.kappa": kappa, figures.TRAINABLE: trainable, **config}

    rows = [row("cnn-full", "resnet50", 23_518_277, 0.71, **{"finetune.strategy": "full"}),
            row("vit-probe", "vit_base_patch16_224", 3_845, 0.52,
                **{"finetune.strategy": "linear_probe"}),
            row("vit-lora", "vit_base_patch16_224", 446_213, 0.66,
                **{"finetune.strategy": "full", "train.adapter": "lora", "lora.rank": 8}),
            row("broken", "resnet50", None, 0.9)]  # no count: not drawn
    [study] = select.studies(rows)
    png, drawn = figures.metric_vs_trainable(study)
    assert png.startswith(b"\x89PNG")
    assert drawn == {
        "resnet50, full": [(23_518_277, 0.71, pytest.approx((0.66, 0.76)), "cnn-full")],
        "vit_base_patch16_224, linear probe": [(3_845, 0.52, pytest.approx((0.47, 0.57)),
                                                "vit-probe")],
        "vit_base_patch16_224, LoRA r8": [(446_213, 0.66, pytest.approx((0.61, 0.71)),
                                           "vit-lora")]}
