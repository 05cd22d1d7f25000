"""Sweeps: grids, folder names, plans (configs, dependencies, filters), the runner, the table,
the compilation cache and the git commit; one tiny sweep end to end."""

from __future__ import annotations

import csv
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import textwrap
import time
from operator import itemgetter

import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags
from programs import run_programs

from jaxtl.commands import cli
from jaxtl.config import demo_settings as demo
from jaxtl.core import compile_cache, provenance
from jaxtl.core.errors import ConfigError
from jaxtl.metrics import headline
from jaxtl.sweep import Sweep, SweepError, axis, plan, product, runner, table
from jaxtl.workdir import files as rundir

REPO = pathlib.Path(__file__).resolve().parents[2]


# --- Grids and names --------------------------------------------------------------------------
def test_product_of_axes_and_lists_is_every_combination_in_order():
    grid = product(axis("data.train_per_class", [10, 100]),
                   [{"optim.name": "sgd", "optim.lr": 0.01},
                    {"optim.name": "adam", "optim.lr": 1e-3}])
    assert grid == [
        {"data.train_per_class": 10, "optim.name": "sgd", "optim.lr": 0.01},
        {"data.train_per_class": 10, "optim.name": "adam", "optim.lr": 1e-3},
        {"data.train_per_class": 100, "optim.name": "sgd", "optim.lr": 0.01},
        {"data.train_per_class": 100, "optim.name": "adam", "optim.lr": 1e-3},
    ]
    assert len(product(axis("a", [1, 2, 3]), axis("b", [1, 2]), axis("c", [1, 2]))) == 12
    assert axis("a", [1]) + axis("a", [2]) == [{"a": 1}, {"a": 2}]


def test_product_refuses_a_key_set_by_two_grids_and_empty_axes():
    with pytest.raises(SweepError, match="sets optim.lr in two of its grids"):
        product(axis("optim.lr", [0.1]), [{"optim.lr": 0.2, "optim.name": "sgd"}])
    with pytest.raises(SweepError, match="non-empty list"):
        axis("optim.lr", [])


def test_folder_names_use_short_keys_and_readable_values():
    own = {"config": "configs/eyepacs.py", "data.train_per_class": -1, "optim.lr": 1e-4,
           "data.augment": "crop,flip", "model.init": "run:pretrain-{model.arch}",
           "optim.decay_epochs": (10, 20), "data.root": "/data/eyepacs"}
    keys = plan.short_keys(own)
    assert plan.run_name(own, keys) == (
        "config=eyepacs,n=-1,lr=0.0001,aug=crop+flip,init=pretrain,decay_epochs=10-20")
    assert plan.short_keys(["data.batch_size", "eval.batch_size"]) == {
        "data.batch_size": "batch", "eval.batch_size": "batch_size"}
    assert plan.short_keys(["train.seed", "data.seed"]) == {"train.seed": "train.seed",
                                                            "data.seed": "data.seed"}
    long_name = plan.run_name({"model.head": "x" * 300}, {"model.head": "head"})
    assert len(long_name) == plan.MAX_NAME_LENGTH and long_name != plan.run_name(
        {"model.head": "x" * 299 + "y"}, {"model.head": "head"})


# --- Plans ------------------------------------------------------------------------------------
def write_sweep(tmp_path: pathlib.Path, body: str) -> Sweep:
    path = tmp_path / "sweep_file.py"
    path.write_text("from jaxtl.sweep import Sweep, axis, product\n\n"
                    "def get_sweep(arg=None):\n" + textwrap.indent(textwrap.dedent(body), "    "))
    return plan.load_sweep(str(path))


TWO_SOURCES = """
return Sweep(
    config="configs/eyepacs.py",
    fixed={"demo.epochs": 1, "train.log_every_steps": 5},
    sources={"pre-{demo.arch}": axis("demo.arch", ["resnet18", "small_cnn"])},
    grid=product(axis("demo.arch", ["resnet18", "small_cnn"]),
                 axis("model.init", ["none", "run:pre-{demo.arch}"]),
                 axis("data.train_per_class", [5, 20])),
)
"""


def test_plan_orders_sources_first_and_points_model_init_at_their_workdirs(tmp_path):
    runs = plan.plan(write_sweep(tmp_path, TWO_SOURCES), tmp_path / "sweep")
    names = [run.name for run in runs]
    assert names[:2] == ["pre-resnet18", "pre-small_cnn"] and len(runs) == 10
    by_name = {run.name: run for run in runs}
    fine_tune = by_name["arch=small_cnn,init=pre,n=20"]
    assert fine_tune.needs == ("pre-small_cnn",)
    assert fine_tune.overrides["model.init"] == str(tmp_path / "sweep" / "pre-small_cnn")
    assert fine_tune.pretrain == "pre"
    assert fine_tune.effective["model.arch"] == "small_cnn"  # the demo applies demo.arch
    scratch = by_name["arch=resnet18,init=none,n=5"]
    assert scratch.overrides["model.init"] == "" and scratch.needs == () and \
        scratch.pretrain == "none"
    assert scratch.effective["train.log_every_steps"] == 5  # fixed reaches every run
    assert by_name["pre-resnet18"].role == "source" and scratch.role == "grid"


def test_a_hub_model_is_passed_on_as_it_is_not_as_a_path(tmp_path):
    body = """
    return Sweep(config="configs/eyepacs.py",
                 grid=[{"model.init": "hf-hub:timm/resnet18.a1_in1k"}, {"model.init": "nowhere"}])
    """
    hub_run, folder_run = plan.plan(write_sweep(tmp_path, body), tmp_path / "sweep")
    assert hub_run.overrides["model.init"] == "hf-hub:timm/resnet18.a1_in1k"
    assert runner.missing_init(hub_run) is None
    assert folder_run.overrides["model.init"] == str(pathlib.Path("nowhere").resolve())
    assert runner.missing_init(folder_run).endswith("does not exist; convert the checkpoint "
                                                    "first (tools/convert_weights) or fix the "
                                                    "sweep's path")


def test_run_command_parses_back_into_the_planned_config(tmp_path, monkeypatch):
    """The --config.KEY=VALUE flags give, through ml_collections, the config the plan checked."""
    body = """
    return Sweep(config="configs/eyepacs.py",
                 grid=[{"optim.lr": 1e-4, "data.augment": "crop,flip", "optim.nesterov": False,
                        "optim.decay_epochs": (3, 5), "data.mean": (0.5, 0.5, 0.5),
                        "model.init": "none", "demo.resolution": 48}])
    """
    (run,) = plan.plan(write_sweep(tmp_path, body), tmp_path / "sweep")
    command = run.command()
    assert command[1:4] == ["-m", "jaxtl.main", "--config"]
    # ml_collections registers the --config.KEY flags from sys.argv when the flag is defined.
    monkeypatch.setattr(sys, "argv", [command[0], *command[3:]])
    values = flags.FlagValues()
    holder = config_flags.DEFINE_config_file("config", flag_values=values)
    flags.DEFINE_string("workdir", None, "", flag_values=values)
    values([command[0], *command[3:]])
    config = holder.value
    demo.apply(config)
    parsed = dict(plan.configuration.flatten(json.loads(plan.configuration.to_json(config))))
    assert parsed == run.effective
    assert parsed["optim.decay_epochs"] == [3, 5] and parsed["data.augment"] == "crop,flip"
    assert parsed["model.init"] == "" and parsed["data.resolution"] == 48


def test_only_filters_by_override_and_brings_the_needed_sources(tmp_path):
    sweep = write_sweep(tmp_path, TWO_SOURCES)
    runs = plan.plan(sweep, tmp_path / "s", ["data.train_per_class=20", "demo.arch=small_cnn"])
    assert [r.name for r in runs] == ["pre-small_cnn", "arch=small_cnn,init=none,n=20",
                                      "arch=small_cnn,init=pre,n=20"]
    either = plan.plan(sweep, tmp_path / "s", ["data.train_per_class=5", "model.init=none",
                                                "demo.arch=resnet18", "demo.arch=small_cnn"])
    assert [r.name for r in either] == ["arch=resnet18,init=none,n=5",
                                        "arch=small_cnn,init=none,n=5"]
    by_name = plan.plan(sweep, tmp_path / "s", ["run=pre-resnet18"])
    assert [r.name for r in by_name] == ["pre-resnet18"]
    with pytest.raises(SweepError, match="no run of the sweep sets it; keys you can filter on: "
                                         "run, data.train_per_class, demo.arch, model.init"):
        plan.plan(sweep, tmp_path / "s", ["optim.lr=0.1"])
    with pytest.raises(SweepError, match="selects no run"):
        plan.plan(sweep, tmp_path / "s", ["data.train_per_class=7"])
    with pytest.raises(SweepError, match="expected key=value"):
        plan.plan(sweep, tmp_path / "s", ["data.train_per_class"])


def test_swept_key_that_the_demo_replaces_is_refused_with_the_demo_key_to_use(tmp_path):
    sweep = write_sweep(tmp_path, """
    return Sweep(config="configs/eyepacs.py", grid=axis("model.arch", ["resnet18", "resnet34"]))
    """)
    with pytest.raises(ConfigError, match=r"run arch=resnet34: the sweep sets model.arch, but "
                                          r"this run has no data.root.*sweep the demo\.\* keys"):
        plan.plan(sweep, tmp_path / "s")
    real = write_sweep(tmp_path, """
    return Sweep(config="configs/eyepacs.py", fixed={"data.root": "/data/eyepacs"},
                 grid=axis("model.arch", ["resnet18", "resnet34"]))
    """)
    assert [r.effective["model.arch"] for r in plan.plan(real, tmp_path / "s")] == [
        "resnet18", "resnet34"]


def test_config_errors_name_the_run_and_the_key(tmp_path):
    typo = write_sweep(tmp_path, """
    return Sweep(config="configs/eyepacs.py", grid=axis("optim.learning_rate", [0.1]))
    """)
    with pytest.raises(ConfigError, match="run learning_rate=0.1: config.optim.learning_rate is "
                                          "not a known setting"):
        plan.plan(typo, tmp_path / "s")
    bad_value = write_sweep(tmp_path, """
    return Sweep(config="configs/eyepacs.py", grid=axis("optim.name", ["sgd", "rmsprop"]))
    """)
    with pytest.raises(ConfigError, match="run optim=rmsprop: invalid config: config.optim.name"
                                          " is 'rmsprop'; allowed values: "):
        plan.plan(bad_value, tmp_path / "s")
    wrong_type = write_sweep(tmp_path, """
    return Sweep(config="configs/eyepacs.py", grid=axis("data.train_per_class", ["ten"]))
    """)
    with pytest.raises(ConfigError, match=r"config.data.train_per_class='ten' has the wrong type"):
        plan.plan(wrong_type, tmp_path / "s")


def test_missing_config_file_fails_only_for_the_runs_that_use_it(tmp_path):
    sweep = write_sweep(tmp_path, """
    return Sweep(config="configs/eyepacs.py",
                 sources={"chest": [{"config": "configs/not_there.py"}]},
                 grid=product([{"config": "configs/eyepacs.py"},
                               {"config": "configs/not_there_either.py"}],
                              axis("model.init", ["none", "run:chest"])))
    """)
    with pytest.raises(SweepError, match="uses config configs/not_there_either.py, which does "
                                         "not exist"):
        plan.plan(sweep, tmp_path / "s")
    with pytest.raises(SweepError, match=r"starts from run 'chest', which the sweep does not "
                                         r"define; sources that could not be built:\n  run chest "
                                         r"uses config configs/not_there.py, which does not exist"):
        plan.plan(sweep, tmp_path / "s", ["config=eyepacs"])
    runs = plan.plan(sweep, tmp_path / "s", ["config=configs/eyepacs.py", "model.init=none"])
    assert [r.name for r in runs] == ["config=eyepacs,init=none"]


def test_cycles_and_name_clashes_are_refused(tmp_path):
    cycle = write_sweep(tmp_path, """
    return Sweep(config="configs/eyepacs.py",
                 sources={"a": [{"model.init": "run:b"}], "b": [{"model.init": "run:a"}]},
                 grid=[{"model.init": "run:a"}])
    """)
    with pytest.raises(SweepError, match="in a cycle: a -> b -> a"):
        plan.plan(cycle, tmp_path / "s")
    clash = write_sweep(tmp_path, """
    return Sweep(config="configs/eyepacs.py", grid=axis("data.augment", ["crop,flip", "crop+flip"]))
    """)
    with pytest.raises(SweepError, match=r"share a folder name \(aug=crop\+flip\)"):
        plan.plan(clash, tmp_path / "s")


def test_sweep_files_in_the_repository_plan(tmp_path):
    demo_runs = plan.plan(plan.load_sweep("configs/sweeps/demo.py"), tmp_path / "demo")
    sources = {run.pretrain for run in demo_runs if run.role == "grid"}
    sizes = {run.effective["data.train_per_class"] for run in demo_runs if run.role == "grid"}
    assert len(sources) >= 2 and len(sizes) >= 3 and demo_runs[0].role == "source"
    grid = [run for run in demo_runs if run.role == "grid"]
    assert {(run.effective["train.seed"], run.effective["data.sample_seed"]) for run in grid} \
        == {(0, 0), (1, 1), (2, 2)}
    assert len(grid) == len(sources) * len(sizes) * 3
    study = plan.load_sweep("configs/sweeps/study.py:eyepacs=/data/eyepacs,chexpert=/data/cx,"
                            "consep=/data/consep")
    keys = set(plan.grid_keys(study))  # the keys of its million runs, found once for all plans
    assert keys >= {"config", "data.resolution", "data.task", "data.train_per_class",
                    "model.arch", "model.head", "optim.name", "optim.lr", "optim.schedule",
                    "data.batch_size", "model.init", "data.augment", "consep.split"}
    configs = set(map(itemgetter("config"), study.grid))
    datasets = {pathlib.Path(config).stem for config in configs}
    assert datasets == {"eyepacs", "chexpert", "cxr14", "consep", "bigearthnet", "consep_seg"}
    runs = plan.plan(study, tmp_path / "study",
                     ["config=eyepacs", "model.arch=resnet50", "data.train_per_class=100",
                      "model.init=none", "data.batch_size=16", "data.augment=none"])
    assert len(runs) == 2 * 3 * 8 * 3  # resolution x head x optimizer-lr x schedule
    assert all(run.effective["data.root"] == "/data/eyepacs" for run in runs)
    assert {run.effective["data.resolution"] for run in runs} == {256, 512}
    transfer = plan.plan(study, tmp_path / "study",
                         ["config=eyepacs", "model.init=run:chexpert-all", "data.resolution=256",
                          "model.arch=densenet201", "data.train_per_class=1000",
                          "model.head=linear", "optim.name=adam", "optim.lr=0.0001",
                          "optim.schedule=gradual", "data.batch_size=16", "data.augment=none"])
    source, run = transfer
    assert source.name == "chexpert-all-densenet201-256px-3ch" and run.needs == (source.name,)
    assert source.effective["data.root"] == "/data/cx" and source.effective["data.channels"] == 3
    assert run.overrides["model.init"] == str(tmp_path / "study" / source.name)
    consep = plan.plan(study, tmp_path / "study",
                       ["config=consep", "model.arch=inception_v3", "data.train_per_class=100",
                        "model.init=none", "model.head=linear", "optim.name=sgd",
                        "optim.lr=0.01", "optim.schedule=flat", "data.batch_size=64",
                        "data.augment=none", "data.task=type4", "data.resolution=96"])
    assert {run.effective["consep.split"] for run in consep} == {"random", "tiles"}
    segmentation = plan.plan(study, tmp_path / "study",
                             ["config=consep_seg", "model.arch=resnet50",
                              "data.train_per_class=3", "model.init=run:consep-types"])
    source, run = segmentation
    assert source.name == "consep-types-resnet50" and run.needs == (source.name,)
    assert source.effective["consep.split"] == "tiles" and run.effective["train.epochs"] == 50
    assert run.effective["data.root"] == source.effective["data.root"] == "/data/consep"


# --- Runner -----------------------------------------------------------------------------------
class ScriptedRun(plan.PlannedRun):
    """A planned run whose command is a short Python script instead of training."""

    script: str = ""

    def command(self) -> list[str]:
        return [sys.executable, "-c", self.script]


def scripted(tmp_path, name, script, needs=()) -> ScriptedRun:
    run = ScriptedRun(name=name, role="grid", config_file="configs/eyepacs.py", own={},
                      overrides={}, needs=tuple(needs), pretrain="none", effective={},
                      workdir=tmp_path / name)
    object.__setattr__(run, "script", script)
    return run


FINISH = "import json, pathlib; pathlib.Path('{dir}/results.json').write_text(json.dumps({{}}))"


def test_runner_skips_finished_runs_records_failures_and_blocks_their_dependents(tmp_path):
    (tmp_path / "finished").mkdir()
    (tmp_path / "finished" / "results.json").write_text("{}")
    runs = [
        scripted(tmp_path, "finished", "raise SystemExit('must not run')"),
        scripted(tmp_path, "fails", "import sys; print('error: the data root is missing'); "
                                    "sys.exit(2)"),
        scripted(tmp_path, "crashes", "raise RuntimeError('XLA aborted')"),
        scripted(tmp_path, "after_failure", "raise SystemExit('must not run')", needs=["fails"]),
        scripted(tmp_path, "ok", "import time\nend = time.process_time() + 0.3\n"
                                 "while time.process_time() < end: pass\n"
                                 + FINISH.format(dir=tmp_path / "ok")),
        scripted(tmp_path, "after_ok", FINISH.format(dir=tmp_path / "after_ok"), needs=["ok"]),
    ]
    lines: list[str] = []
    status = runner.run_all(runs, parallel=2, out=lines.append)
    assert status == {"finished": "done", "fails": "failed", "crashes": "failed",
                      "after_failure": "blocked", "ok": "done", "after_ok": "done"}
    assert runner.read_status(tmp_path / "fails")["error"] == "the data root is missing"
    assert runner.read_status(tmp_path / "crashes")["error"] == "RuntimeError: XLA aborted"
    assert runner.read_status(tmp_path / "after_failure")["error"] == \
        "starts from run fails, which failed"
    assert not (tmp_path / "finished" / rundir.SWEEP_STATUS_FILE).exists()  # skipped, not touched
    ok = runner.read_status(tmp_path / "ok")
    assert ok["cpu_seconds"] >= 0.3 and ok["wall_seconds"] >= ok["cpu_seconds"] / 2
    assert lines[0].startswith("[sweep] 1/6 done (1 already finished), 0 failed, 5 remaining")
    assert lines[-1].startswith("[sweep] 3/6 done (1 already finished), 3 failed, 0 remaining")
    assert any("ETA" in line and "after the first run" not in line for line in lines)


def test_runner_launches_unfinished_runs_again(tmp_path):
    flaky = tmp_path / "flaky"
    script = (f"import json, pathlib, sys; p = pathlib.Path('{flaky}');"
              f"m = p / 'attempted'; first = not m.exists(); m.write_text('x');"
              f"sys.exit('error: preempted') if first else "
              f"(p / 'results.json').write_text('{{}}')")
    run = scripted(tmp_path, "flaky", script)
    assert runner.run_all([run], out=lambda line: None) == {"flaky": "failed"}
    assert runner.run_all([run], out=lambda line: None) == {"flaky": "done"}
    record = runner.read_status(flaky)
    assert record["attempts"] == 2 and record["status"] == "done" and record["error"] is None
    assert (flaky / rundir.SWEEP_LOG_FILE).read_text().count("# attempt") == 2


def test_prune_checkpoints_removes_finished_runs_latest_checkpoints_only(tmp_path):
    def run_folder(name: str, finished: bool, size: int) -> ScriptedRun:
        for sub, step, content in ((rundir.LATEST_DIR, "8", b"x" * size),
                                   (rundir.BEST_DIR, "6", b"best")):
            (tmp_path / name / sub / step / "state").mkdir(parents=True)
            (tmp_path / name / sub / step / "state" / "d").write_bytes(content)
        if finished:
            (tmp_path / name / rundir.RESULTS_FILE).write_text("{}")
        return scripted(tmp_path, name, "raise SystemExit('must not run')")

    runs = [run_folder("done", True, 3_000_000), run_folder("unfinished", False, 500),
            run_folder("in_use", True, 300)]
    lines: list[str] = []
    with rundir.locked(tmp_path / "in_use"):  # another process holds this run folder
        assert runner.prune_checkpoints(runs, out=lines.append) == 3_000_000
    assert not (tmp_path / "done" / rundir.LATEST_DIR).exists()
    assert (tmp_path / "done" / rundir.BEST_DIR / "6" / "state" / "d").read_bytes() == b"best"
    assert sorted(p.name for p in (tmp_path / "done").iterdir()) == [
        rundir.BEST_DIR, rundir.RESULTS_FILE]  # nothing left aside, the lock released
    assert rundir.has_checkpoints(tmp_path / "unfinished")  # needed to resume
    assert rundir.has_checkpoints(tmp_path / "in_use")
    assert lines[0].startswith("[sweep] not pruned: ") and "in use by process" in lines[0]
    assert lines[-1] == ("[sweep] pruned the latest checkpoints of 1 finished run(s): "
                         "3 MB freed")


def test_error_from_log_prefers_the_jaxtl_message():
    log = "I1126 starting\nTraceback...\nValueError: deep\nerror: config.x is wrong\n"
    assert runner.error_from_log(log, 2) == "config.x is wrong"
    assert runner.error_from_log("Traceback\n  File x\nKeyError: 'a'\n", 1) == "KeyError: 'a'"
    assert runner.error_from_log("", -9) == "killed by SIGKILL (out of memory?)"


# --- Table ------------------------------------------------------------------------------------
def test_metric_columns_flatten_nested_metrics_and_intervals():
    metrics = {"kappa": 0.8, "kappa_ci": [0.7, 0.9], "recall": {"0": 0.5, "1": 1.0},
               "auroc": {"Edema": 0.9}, "auroc_ci": {"Edema": [0.85, 0.95], "Hernia": None},
               "mean_auroc_ci": [None, None], "confusion_matrix": [[1, 0], [0, 1]]}
    assert table.metric_columns("test.", metrics) == {
        "test.kappa": 0.8, "test.kappa.ci_low": 0.7, "test.kappa.ci_high": 0.9,
        "test.recall.0": 0.5, "test.recall.1": 1.0, "test.auroc.Edema": 0.9,
        "test.auroc.Edema.ci_low": 0.85, "test.auroc.Edema.ci_high": 0.95,
        "test.auroc.Hernia_ci": None,
        "test.mean_auroc.ci_low": None, "test.mean_auroc.ci_high": None,
        "test.confusion_matrix": [[1, 0], [0, 1]]}


def fake_run_folder(root: pathlib.Path, name: str, kappa: float) -> pathlib.Path:
    folder = root / name
    folder.mkdir(parents=True)
    config = {"dataset": "eyepacs", "data": {"train_per_class": 10, "root": ""},
              "optim": {"lr": 0.01, "decay_epochs": [10, 20]}, "eval": {"best_metric": "kappa"}}
    (folder / "results.json").write_text(json.dumps({
        "demo": True, "dataset": "eyepacs", "jaxtl_version": "0.1.0", "git_commit": "abc",
        "git_dirty": False, "best_epoch": 2, "epochs": 3, "steps": 30,
        "split_sizes": {"train": 50, "val": 20, "test": 20},
        "parameters": {"trainable": 1205, "total": 11177538, "optimizer_state_bytes": 4820},
        "val": {"kappa": kappa, "kappa_ci": [kappa - 0.1, kappa + 0.1], "count": 20},
        "test": {"kappa": kappa - 0.05, "confusion_matrix": [[3, 1], [0, 4]]},
        "train_images_per_second": 42.0, "wall_seconds_this_session": 12.5, "config": config}))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"step": 10, "split": "train", "demo": True, "loss": 1.0, "epoch": 1.0},
        {"step": 10, "split": "val", "demo": True, "epoch": 1, "kappa": 0.1},
        {"step": 30, "split": "val", "demo": True, "epoch": 3, "kappa": 0.3,
         "recall": {"0": 0.25}}]))
    (folder / rundir.SWEEP_STATUS_FILE).write_text(json.dumps({
        "name": name, "role": "grid", "status": "done", "pretrain": "none", "needs": [],
        "wall_seconds": 20.0, "attempts": 1, "effective": {}}))
    return folder


def test_table_rows_hold_config_metrics_epochs_and_provenance(tmp_path):
    fake_run_folder(tmp_path, "b", 0.6)
    fake_run_folder(tmp_path, "a", 0.5)
    pending = tmp_path / "c"
    pending.mkdir()
    (pending / rundir.SWEEP_STATUS_FILE).write_text(json.dumps({
        "name": "c", "role": "grid", "status": "failed", "error": "boom", "needs": ["a"],
        "pretrain": "a",
        "effective": {"dataset": "eyepacs", "data.root": "", "optim.lr": 0.1}}))
    rows = table.write(tmp_path)
    assert [row["run"] for row in rows] == ["a", "b", "c"]
    a = rows[0]
    assert a["optim.lr"] == 0.01 and a["data.train_per_class"] == 10 and a["dataset"] == "eyepacs"
    assert a["val.kappa"] == 0.5 and a["val.kappa.ci_low"] == pytest.approx(0.4)
    assert a["test.kappa"] == pytest.approx(0.45) and a["test.confusion_matrix"] == [[3, 1], [0, 4]]
    assert a["last_val.kappa"] == 0.3 and a["last_val.recall.0"] == 0.25
    assert (a["best_epoch"], a["stop_epoch"]) == (2, 3)
    assert (a["demo"], a["git_commit"], a["jaxtl_version"]) == (True, "abc", "0.1.0")
    assert (a["wall_seconds"], a["train_images_per_second"]) == (20.0, 42.0)
    assert (a["parameters.trainable"], a["parameters.total"]) == (1205, 11177538)
    c = rows[2]
    assert (c["status"], c["error"], c["optim.lr"], c["demo"]) == ("failed", "boom", 0.1, True)
    assert table.read(tmp_path) == [{key: row.get(key) for key in table.columns(rows)}
                                    for row in rows]
    with (tmp_path / table.RESULTS_CSV).open() as handle:
        csv_rows = list(csv.DictReader(handle))
    assert csv_rows[0]["val.kappa.ci_high"] == "0.6" and csv_rows[0]["optim.decay_epochs"] == \
        "[10, 20]" and csv_rows[2]["test.kappa"] == ""
    assert list(csv_rows[0])[:3] == ["run", "role", "status"]


def test_summary_lists_each_runs_headline_metric_best_first_and_marks_failed_runs(tmp_path):
    fake_run_folder(tmp_path, "a", 0.5)
    fake_run_folder(tmp_path, "b", 0.6)
    failed = tmp_path / "c"
    failed.mkdir()
    (failed / rundir.SWEEP_STATUS_FILE).write_text(json.dumps({
        "name": "c", "role": "grid", "status": "failed", "error": "boom", "needs": [],
        "effective": {"dataset": "eyepacs", "data.root": ""}}))
    rows = table.write(tmp_path)
    header, body = table.summary(rows)
    assert header[:6] == ["", "run", "status", "metric", "test [95% CI]", "val [95% CI]"]
    assert [(row[0], row[1]) for row in body] == [("", "b"), ("", "a"), ("FAILED", "c")]
    assert body[0][3:6] == ["kappa", "0.550", "0.600 [0.500, 0.700]"]  # test has no interval
    assert body[2][-1] == "boom"
    written = (tmp_path / table.SUMMARY_MD).read_text()
    assert "3 runs: 2 done, 1 failed, 0 not finished." in written
    assert headline.markdown_table(header, body) in written


# --- Compilation cache and provenance ---------------------------------------------------------
CACHE_PROBE = """
import sys, jax, jax.numpy as jnp
from jax import monitoring
from jaxtl.core import compile_cache
events = []
monitoring.register_event_listener(lambda name, **kwargs: events.append(name))
compile_cache.enable(sys.argv[1])
step = jax.jit(lambda w, x: jnp.tanh(x @ w).sum())
step(jnp.ones((32, 16)), jnp.ones((8, 32))).block_until_ready()
print(events.count('/jax/compilation_cache/cache_hits'),
      events.count('/jax/compilation_cache/cache_misses'))
"""


def test_second_process_takes_compiled_programs_from_the_persistent_cache(tmp_path):
    env = {key: value for key, value in os.environ.items()
           if key != "JAX_COMPILATION_CACHE_DIR"}

    def probe() -> tuple[int, int]:
        result = subprocess.run([sys.executable, "-c", CACHE_PROBE, str(tmp_path)], cwd=REPO,
                                env=env, capture_output=True, text=True, timeout=120,
                                check=False)
        assert result.returncode == 0, result.stderr[-2000:]
        hits, misses = result.stdout.split()
        return int(hits), int(misses)

    first_hits, first_misses = probe()
    second_hits, second_misses = probe()
    assert first_hits == 0 and first_misses >= 1
    assert second_hits == first_misses and second_misses == 0
    assert list((tmp_path / "jax-compilation").iterdir())


def test_a_process_started_with_the_cache_environment_caches_even_its_fastest_programs(tmp_path):
    env = {**os.environ, **compile_cache.environment(tmp_path / "programs")}
    script = ("import jax, jax.numpy as jnp; "
              "jax.jit(lambda x: x + 1)(jnp.ones(3)).block_until_ready()")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    # JAX's defaults skip a program compiled in under a second: this one is cached all the same
    assert [path.name for path in (tmp_path / "programs").iterdir()
            if path.name.startswith("jit__lambda")]


def test_git_commit_is_the_checkouts_head_and_none_outside_git(tmp_path, monkeypatch):
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                          text=True, check=False).stdout.strip()
    assert provenance.git_commit()["git_commit"] == head
    monkeypatch.setattr(provenance, "_PACKAGE_ROOT", tmp_path)
    assert provenance.git_commit() == {"git_commit": None, "git_dirty": None}


# --- End to end -------------------------------------------------------------------------------
def read_or_empty(path: pathlib.Path) -> str:
    return path.read_text(errors="replace") if path.is_file() else ""


def wait_for(condition, seconds: float = 300.0, what=lambda: "") -> None:
    """Waits until `condition()`; `what()`: what to show if it never comes."""
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, f"timed out after {seconds:.0f} s\n{what()}"
        time.sleep(0.1)


def where_the_run_is(workdir: pathlib.Path) -> str:
    """The run's log, with its threads' stacks if a process still holds its lock."""
    lock = workdir / rundir.LOCK_FILE
    if lock.is_file():
        os.kill(json.loads(lock.read_text())["pid"], getattr(signal, cli.STACKS_SIGNAL))
        time.sleep(2)
    return (f"lock held: {lock.is_file()}; the run's log:\n"
            + read_or_empty(workdir / rundir.SWEEP_LOG_FILE)[-6000:])


TINY_SWEEP = """
return Sweep(
    config="configs/eyepacs.py",
    fixed={{"data.cache_dir": "{cache}", "demo.num_patients": 40, "demo.image_size": 48,
           "demo.arch": "small_cnn", "demo.resolution": 32, "demo.batch_size": 8,
           "demo.epochs": 1, "data.num_workers": 0, "eval.batch_size": 16,
           "demo.bootstrap_samples": 20, "train.log_every_steps": 2}},
    sources={{"pre": [{{"demo.seed": 1, "demo.epochs": 2}}]}},
    grid=product(axis("model.init", ["none", "run:pre"]), axis("data.train_per_class", [4])),
)
"""


@pytest.mark.slow
def test_tiny_sweep_end_to_end_on_both_launchers_then_report(tmp_path):
    """One tiny sweep: killed while its source trains, resumed through submitit's local
    executor as job arrays (the source's first), finished by the local launcher, then
    reported. (tests/sweep/test_slurm.py has the job arrays' other tests.)"""
    write_sweep(tmp_path, TINY_SWEEP.format(cache=tmp_path / "cache"))
    sweep_args = ["--config", str(tmp_path / "sweep_file.py"), "--workdir", str(tmp_path / "runs")]
    command = [sys.executable, "-m", "jaxtl.sweep", *sweep_args]
    slurm = [*sweep_args, "--launcher", "slurm", "--submitit_cluster", "local",
             "--slurm_gpus", "0", "--slurm_cpus", "1"]
    # the runs put their compilation cache in their own cache folder, not in the tests' shared one
    # (an empty JAX_COMPILATION_CACHE_DIR is no folder chosen, as an absent one)
    env = {key: value for key, value in os.environ.items()
           if key != "JAX_COMPILATION_CACHE_DIR"}
    own_cache = {"JAX_COMPILATION_CACHE_DIR": ""}
    # kill -9 the sweep while its first run trains: the run saves a checkpoint and stops
    # (SIGTERM from its dying parent), and the same sweep resumes it
    output = tmp_path / "killed_sweep.log"
    with output.open("w") as sink:
        killed = subprocess.Popen(command, cwd=REPO, env=env, stdout=sink,
                                  stderr=subprocess.STDOUT)
    pre = tmp_path / "runs" / "pre"

    def training_or_ended() -> bool:
        assert killed.poll() is None, read_or_empty(output)[-3000:]
        return '"split": "train"' in read_or_empty(pre / rundir.METRICS_FILE)

    wait_for(training_or_ended)
    killed.kill()
    killed.wait()
    wait_for(lambda: "stopped by SIGTERM" in read_or_empty(pre / rundir.SWEEP_LOG_FILE)
             and not (pre / rundir.LOCK_FILE).exists(),
             what=lambda: where_the_run_is(pre))

    # --launcher slurm: the fine-tuning run and the source it starts from, two arrays
    # the sweep commands from here on: children of one program runner (one jaxtl import), each
    # run still a process of its own
    (arrays,) = run_programs([("jaxtl.sweep", [*slurm, "--only", "model.init=run:pre"],
                               own_cache)], timeout=900)
    assert arrays.returncode == 0, arrays.stdout[-3000:] + arrays.stderr[-3000:]
    assert "[sweep] 0 finished, 2 to submit to local" in arrays.stdout
    rows = table.read(tmp_path / "runs")
    assert [(r["run"], r["status"]) for r in rows] == [("init=pre,n=4", "done"), ("pre", "done")]
    source = runner.read_status(pre)
    tuned = runner.read_status(tmp_path / "runs" / "init=pre,n=4")
    assert tuned["started"] >= source["finished"]  # the source's array ran first
    assert source["job_id"] != tuned["job_id"]  # one job per run
    assert source["attempts"] == 2  # the killed attempt, then its job's
    assert "resumed from step" in (pre / rundir.SWEEP_LOG_FILE).read_text()

    # the local launcher: skips the finished runs, runs the last one
    (first,) = run_programs([("jaxtl.sweep", sweep_args, own_cache)], timeout=600)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "[sweep] 3/3 done (2 already finished), 0 failed, 0 remaining" in first.stdout
    # the summary at the end: printed, and written as Markdown beside results.csv
    summary = (tmp_path / "runs" / table.SUMMARY_MD).read_text()
    assert "3 runs: 3 done, 0 failed" in summary
    for name in ("init=none,n=4", "init=pre,n=4", "pre"):
        assert f"|  | {name} | done | kappa | " in summary
    assert re.search(r"^ *run +status +metric +test \[95% CI\] +val \[95% CI\]", first.stdout,
                     re.MULTILINE)
    assert runner.read_status(pre)["attempts"] == 2
    rows = table.read(tmp_path / "runs")
    assert [(r["run"], r["status"], r["pretrain"]) for r in rows] == [
        ("init=none,n=4", "done", "none"), ("init=pre,n=4", "done", "pre"),
        ("pre", "done", "none")]
    fine_tuned = rows[1]
    assert fine_tuned["model.init"] == str(tmp_path / "runs" / "pre")
    assert json.loads((tmp_path / "runs" / "init=pre,n=4" / "results.json").read_text())[
        "config"]["model"]["init"] == str(pre)
    assert fine_tuned["demo"] is True and fine_tuned["git_commit"]
    assert fine_tuned["val.count"] == fine_tuned["split_sizes.val"]
    assert fine_tuned["data.train_per_class"] == 4 and "test.kappa" in fine_tuned
    assert fine_tuned["test.kappa.ci_low"] <= fine_tuned["test.kappa"] <= \
        fine_tuned["test.kappa.ci_high"]
    with np.load(tmp_path / "runs" / "init=pre,n=4" / "predictions_test.npz") as saved:
        assert saved["labels"].shape == (fine_tuned["split_sizes.test"],)
        np.testing.assert_allclose(saved["scores"].sum(axis=1), 1.0, rtol=1e-5)
        assert len(saved["names"]) == saved["scores"].shape[1] == 5
    assert list((tmp_path / "cache" / "jax-compilation").iterdir())

    again, report = run_programs([("jaxtl.sweep", slurm, own_cache),
                                  ("jaxtl.report", [str(tmp_path / "runs")])], timeout=600)
    assert again.returncode == 0 and "[sweep] 3 finished, 0 to submit" in again.stdout
    assert report.returncode == 0, report.stderr[-3000:]
    html = (tmp_path / "runs" / "report" / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 5 and "init=pre,n=4" in html


# --- Devices of parallel runs ---------------------------------------------------------------
def test_parallel_runs_get_their_own_gpus_or_an_equal_share_of_each():
    gpus = ["0", "1", "2", "3"]
    assert [runner.slot_environment(slot, 2, gpus)["CUDA_VISIBLE_DEVICES"]
            for slot in range(2)] == ["0,2", "1,3"]  # disjoint, every GPU used
    assert runner.slot_environment(0, 4, gpus) == {"CUDA_VISIBLE_DEVICES": "0"}
    shared = [runner.slot_environment(slot, 6, ["0", "1"]) for slot in range(6)]
    assert [env["CUDA_VISIBLE_DEVICES"] for env in shared] == ["0", "1"] * 3
    assert {env["XLA_PYTHON_CLIENT_MEM_FRACTION"] for env in shared} == {"0.300"}  # 3 per GPU
    assert runner.slot_environment(1, 2, []) == {}  # a machine without GPUs
    assert runner.slot_environment(0, 1, gpus) == {}  # one run keeps every device


def test_the_gpus_are_those_cuda_visible_devices_names():
    assert runner.visible_gpus({"CUDA_VISIBLE_DEVICES": "2,5"}) == ["2", "5"]
    assert runner.visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []


def test_the_foundation_sweep_compares_three_models_adapted_three_ways(tmp_path):
    sweep = plan.load_sweep("configs/sweeps/foundation.py:eyepacs=/data/eyepacs,weights=/w")
    runs = plan.plan(sweep, tmp_path / "foundation", ["config=eyepacs"])
    assert len(runs) == 3 * 3 * 3 * 3  # models x adaptations x sizes x seeds
    assert {run.effective["data.root"] for run in runs} == {"/data/eyepacs"}
    ways = {(run.effective["model.arch"], run.effective["model.init"],
             run.effective["finetune.strategy"], run.effective["train.adapter"])
            for run in runs}
    assert ways == {(arch, f"/w/{folder}", strategy, adapter)
                    for arch, folder in (("resnet50", "resnet50"),
                                         ("vit_base_patch16_224", "vit_base_patch16_224"),
                                         ("vit_large_patch16_224_avg", "retfound"))
                    for strategy, adapter in (("linear_probe", "none"), ("full", "lora"),
                                              ("full", "none"))}
    lora_cnn = [run for run in runs if run.effective["train.adapter"] == "lora"
                and run.effective["model.arch"] == "resnet50"]
    assert lora_cnn and all(tuple(run.effective["lora.targets"]) == ("conv1", "conv3")
                            and run.effective["model.drop_path"] == 0.0 for run in lora_cnn)
    names = {run.name.split(",")[0] for run in runs}
    assert names == {"config=linear_probe-eyepacs", "config=retfound-eyepacs"}
