"""A run that cannot go on stops with one message and keeps what it had: a diverging loss, a
full disk, unreadable images (with both policies), a second writer."""

from __future__ import annotations

import errno
import json

import jax
import numpy as np
import pytest
from conftest import tiny_config
from layouts.bad_files import BAD_KINDS, spoil
from layouts.eyepacs import eyepacs_labels, write_eyepacs
from programs import run_programs

from jaxtl.core.errors import NonFiniteError, UnreadableImage, UserError
from jaxtl.data import loading
from jaxtl.engine import transfer
from jaxtl.explain.explainer import Request, explain
from jaxtl.training import loop as train
from jaxtl.workdir import checkpoints as checkpoint
from jaxtl.workdir import files as rundir

pytestmark = pytest.mark.slow
SMALL = {"demo.arch": "small_cnn", "model.arch": "small_cnn", "demo.bootstrap_samples": 10}


def finite(variables) -> bool:
    return all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(variables))


def test_a_diverging_run_stops_naming_the_step_and_keeps_its_last_good_checkpoint(tmp_path):
    config = tiny_config(tmp_path, overrides={**SMALL, "optim.lr": 100.0,
                                              "optim.schedule": "flat",
                                              "train.checkpoint_every_steps": 1})
    with pytest.raises(NonFiniteError, match=r"training diverged at step (\d+) \(epoch .*, "
                       r"learning rate 100\): the (loss|gradient norm) is (nan|inf).*last "
                       r"good one: lower optim.lr") as error:
        train.train_and_evaluate(config, tmp_path / "run")
    failed_step = int(str(error.value).split("at step ")[1].split()[0])
    saved = sorted(int(p.name) for p in (tmp_path / "run" / rundir.LATEST_DIR).iterdir())
    assert saved and max(saved) < failed_step  # nothing of the failing step was saved
    last = transfer.load_variables(tmp_path / "run" / rundir.LATEST_DIR / str(max(saved)))
    assert finite(last)  # restorable and finite
    assert not (tmp_path / "run" / rundir.RESULTS_FILE).exists()


def test_a_full_disk_is_one_message_and_the_earlier_checkpoint_stays(tmp_path, monkeypatch):
    config = tiny_config(tmp_path, overrides={**SMALL, "train.checkpoint_every_steps": 2})
    original = checkpoint.RunCheckpoints.save_latest
    calls = []

    def full_on_the_second_save(self, step, *args, **kwargs):
        calls.append(step)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run"))
        return original(self, step, *args, **kwargs)

    monkeypatch.setattr(checkpoint.RunCheckpoints, "save_latest", full_on_the_second_save)
    with pytest.raises(UserError, match=r"cannot write to the run folder .*the disk is full"
                       r".*earlier checkpoints are intact"):
        train.train_and_evaluate(config, tmp_path / "run")
    kept = tmp_path / "run" / rundir.LATEST_DIR / str(calls[0])
    assert finite(transfer.load_variables(kept))


@pytest.fixture(scope="module")
def spoiled(tmp_path_factory):
    """An EyePACS download with one unreadable image of each kind, and which records they
    are (by split, as the run splits the patients)."""
    root = write_eyepacs(tmp_path_factory.mktemp("spoiled") / "eyepacs", eyepacs_labels(30))
    config = tiny_config(root.parent, overrides={"data.root": str(root)})
    splits = loading.load_splits(config)
    bad = {"train": splits.train[3], "val": splits.val[1], "test": splits.test[0]}
    for kind, record in zip(BAD_KINDS, bad.values()):
        spoil(root / "train" / f"{record.image_id}.jpeg", kind)
    return root, bad


def test_skip_leaves_unreadable_images_out_of_training_and_evaluation(tmp_path, spoiled):
    root, bad = spoiled
    config = tiny_config(tmp_path, overrides={**SMALL, "data.root": str(root),
                                              "data.bad_images": "skip", "train.epochs": 2})
    results = train.train_and_evaluate(config, tmp_path / "run")
    assert results["skipped_training_images"] == 2  # one image, each of the 2 epochs
    for split in ("val", "test"):
        assert results[split]["excluded"] == {"count": 1, "reason": "unreadable image",
                                              "image_ids": [bad[split].image_id]}
        assert results[split]["count"] == results["split_sizes"][split] - 1
        with np.load(rundir.predictions_file(tmp_path / "run", split)) as saved:
            assert bad[split].image_id not in set(saved["image_ids"])
    logged = [json.loads(line) for line in
              (tmp_path / "run" / rundir.METRICS_FILE).read_text().splitlines()]
    assert max(r.get("skipped_images", 0) for r in logged if r["split"] == "train") == 2
    explained = explain(tmp_path / "run", Request(split="test"))  # blank stand-ins are not maps
    assert explained["unreadable_images"] == [bad["test"].image_id]
    assert explained["images"] == results["split_sizes"]["test"] - 1
    with np.load(rundir.explanation_dir(tmp_path / "run", "test", "gradcam")
                 / rundir.EXPLAIN_MAPS_FILE) as maps:
        assert bad["test"].image_id not in set(maps["image_id"])
        assert len(maps["image_id"]) == explained["images"]


def test_error_stops_at_the_image_and_the_same_command_says_so_at_once(tmp_path, spoiled):
    root, bad = spoiled
    # one epoch: every training image is drawn in it (the resumed run meets the bad one too);
    # a run on data.root otherwise trains the config's 30 epochs
    config = tiny_config(tmp_path, overrides={**SMALL, "data.root": str(root),
                                              "train.epochs": 1})
    with pytest.raises(UnreadableImage, match=rf"{bad['train'].image_id}.jpeg cannot be read as "
                       rf"an image .*train split.*python -m jaxtl.commands.verify"):
        train.train_and_evaluate(config.copy_and_resolve_references(), tmp_path / "run")
    stopped = rundir.read_stopped_at(tmp_path / "run")
    assert stopped["image_id"] == bad["train"].image_id
    with pytest.raises(UnreadableImage, match=r"this run stopped before at the unreadable "
                       rf"image {bad['train'].image_id} and it is still unreadable"):
        train.train_and_evaluate(config.copy_and_resolve_references(), tmp_path / "run")
    config.data.bad_images = "skip"  # resuming with skip is allowed, and goes on
    results = train.train_and_evaluate(config, tmp_path / "run")
    assert results["skipped_training_images"] > 0
    assert rundir.read_stopped_at(tmp_path / "run") is None


def test_verify_lists_every_planted_bad_file_and_exits_1(tmp_path, spoiled):
    root, bad = spoiled
    out = tmp_path / "bad.json"
    args = ["--config", "configs/eyepacs.py", f"--config.data.root={root}",
            "--config.data.resolution=32", f"--config.data.cache_dir={tmp_path / 'cache'}",
            "--workers", "2", "--out", str(out)]
    listing, only_val = run_programs([("jaxtl.commands.verify", args),
                                      ("jaxtl.commands.verify", [*args, "--splits", "val"])])
    assert listing.returncode == 1 and not listing.traceback, listing.stderr[-2000:]
    assert only_val.returncode == 1, only_val.stderr[-2000:]
    found = json.loads(out.read_text())  # the last command's list: the val split's only
    assert {(item["split"], item["image_id"]) for item in found} == {("val", bad["val"].image_id)}
    printed = {tuple(line.split("\t")[:2]) for line in listing.stdout.splitlines()
               if "\t" in line}
    assert printed == {(split, record.image_id) for split, record in bad.items()}
    assert "3 unreadable image(s) in train, val, test" in listing.stdout
