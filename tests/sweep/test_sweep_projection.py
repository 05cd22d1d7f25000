"""A sweep's plan on a TPU topology: one compile per distinct step, each run's time and the
chip-hours, and the refusal of runs that do not fit."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import pathlib
import textwrap

import pytest

from jaxtl.config import validation
from jaxtl.core.errors import UserError
from jaxtl.data import loading
from jaxtl.sweep import plan, projection

SWEEP = """
return Sweep(
    config="configs/eyepacs.py",
    fixed={{"data.cache_dir": "{cache}", "demo.num_patients": 40, "demo.image_size": 48,
           "demo.arch": "small_cnn", "demo.resolution": 16, "demo.epochs": 2,
           "data.num_workers": 0, "eval.batch_size": 16}},
    grid=product(axis("demo.batch_size", [8, 16]), axis("optim.lr", [0.1, 0.01]),
                 axis("data.train_per_class", [4, 8])),
)
"""


def planned(tmp_path: pathlib.Path, only=()) -> list[plan.PlannedRun]:
    path = tmp_path / "sweep_file.py"
    path.write_text("from jaxtl.sweep import Sweep, axis, product\n\ndef get_sweep(arg=None):\n"
                    + textwrap.indent(textwrap.dedent(SWEEP.format(cache=tmp_path / "cache")),
                                      "    "))
    return plan.plan(plan.load_sweep(str(path)), tmp_path / "runs", only)


def test_runs_share_a_step_unless_what_they_change_shapes_the_program(tmp_path):
    runs = planned(tmp_path)
    task = {"kind": "multiclass", "names": ["0", "1", "2", "3", "4"]}
    keys = {run.name: projection.step_key(run, task) for run in runs}
    by_batch = {}
    for run in runs:  # learning rate and training-set size do not change the program
        by_batch.setdefault(run.effective["data.batch_size"], set()).add(keys[run.name])
    assert {batch: len(found) for batch, found in by_batch.items()} == {8: 1, 16: 1}
    assert len(set(keys.values())) == 2
    assert projection.step_key(runs[0], {**task, "names": ["a", "b"]}) != keys[runs[0].name]
    # the splits differ with the training-set size only
    assert len({projection.data_key(run) for run in runs}) == 2


def test_a_run_that_does_not_fit_stops_the_sweep_naming_it():
    figures = {"fits": True, "hbm_bytes": 16 * 2**30, "chip": "v5e"}
    runs = [projection.RunProjection("small", figures, 10, 2),
            projection.RunProjection("big", {**figures, "fits": False}, 10, 2)]
    projection.refuse_misfits(runs[:1])
    with pytest.raises(UserError, match=r"1 run\(s\) do not fit in the 17.2 GB of a v5e chip: "
                                        r"big; lower their data.batch_size"):
        projection.refuse_misfits(runs)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("libtpu") is None,
                    reason="libtpu is not installed (pip install -e '.[tpu]')")
def test_each_distinct_step_compiles_once_and_the_chip_hours_add_up(tmp_path):
    runs = planned(tmp_path, only=["demo.batch_size=8"])
    said: list[str] = []
    projected = projection.project_runs(runs, "v5e:2x4", out=said.append)
    assert len(projected) == 4 and len([line for line in said if "compiling" in line]) == 1
    figures = projected[0].figures
    assert all(run.figures is figures for run in projected)
    assert figures["chips"] == 8 and figures["images_per_chip"] == 1 and figures["fits"]
    for run, result in zip(runs, projected):
        config = plan.run_config(run)
        splits = loading.sampled_splits(config, loading.data_root(config),
                                        validation.dataset_spec(config))
        assert result.train_steps == len(splits.train) // 8 * 2  # 2 epochs of batch 8
        evaluations = 2 + 1  # every epoch, then the best checkpoint's validation
        assert result.eval_batches == (evaluations * math.ceil(len(splits.val) / 16)
                                       + math.ceil(len(splits.test) / 16))
        seconds = (result.train_steps * figures["train_step_seconds"]
                   + result.eval_batches * figures["eval_step_seconds"])
        assert result.chip_hours == pytest.approx(8 * seconds / 3600)
    lines = projection.describe(projected)
    assert f"{sum(run.chip_hours for run in projected):.2f} chip-hours" in lines[-1]
    assert all(run.name in line for run, line in zip(projected, lines))
    assert dataclasses.replace(projected[0], train_steps=0).hours < projected[0].hours
