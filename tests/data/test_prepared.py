"""Prepared data (python -m jaxtl.commands.prepare, data.prepared): every dataset round-trips with the same
records and pixels within the resizing tolerance, a killed prepare resumes, and prepared data
that do not fit the config are refused."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import REPO, tiny_config
from programs import run_programs

from jaxtl.commands import prepare
from jaxtl.config import demo_settings as demo
from jaxtl.core.errors import DataError
from jaxtl.data import loading, prepared
from jaxtl.data.records import SPLITS
from jaxtl.engine.build import image_transform
from jaxtl.training import loop as train

DATASETS = ("eyepacs", "chexpert", "cxr14", "consep", "bigearthnet")
# Largest mean absolute difference between the evaluation pixels from the original files and
# from prepared data, as a fraction of the value range (255, 65535 or 10000): preparing resizes
# once more (to the stored short side) before the training transform's crop and resize.
# Measured on the demo data at the stored size: EyePACS 0.4 % (1.1 % on the worst image),
# BigEarthNet 0.04 %, chest X-rays and CoNSeP 0 (README.md, "Prepared data").
RESIZING_TOLERANCE = 0.02


def demo_config(folder, name, **overrides):
    config = tiny_config(folder, name, overrides)
    demo.apply(config)
    return config


def prepared_config(config, folder):
    config = config.copy_and_resolve_references()
    config.data.prepared = str(folder)
    return config


@pytest.fixture(scope="module", params=DATASETS)
def dataset(request, tmp_path_factory):
    """(raw config, prepared config, manifest) of a dataset's tiny demo, prepared once."""
    folder = tmp_path_factory.mktemp(request.param)
    config = demo_config(folder, request.param)
    out = folder / "prepared"
    manifest = prepared.write(prepare.make_plan(config, records_per_shard=16), out, workers=2)
    return config, prepared_config(config, out), manifest


def signature(records):
    return [(r.image_id, r.label, r.patient) for r in records]


def test_prepared_runs_see_the_same_records_labels_and_patients(dataset):
    config, from_shards, manifest = dataset
    raw, shards = loading.load_splits(config), loading.load_splits(from_shards)
    for split in SPLITS:
        assert signature(shards.split(split)) == signature(raw.split(split))
    assert shards.task == raw.task and shards.label_policies == raw.label_policies
    assert manifest["counts"] == {split: len(raw.split(split)) for split in SPLITS}
    assert manifest["records_sha256"] == prepared.records_digest(
        [r for split in SPLITS for r in raw.split(split)])
    # each stored record says which image it is, with its patient and label
    for record in shards.val:
        file, _, position = record.path.rpartition("#")
        header, _ = prepared.decode(prepared._reader(file).read([int(position)])[0])
        label = list(record.label) if isinstance(record.label, tuple) else record.label
        assert (header["image_id"], header["patient"], header["label"]) == (
            record.image_id, record.patient, label)


def test_prepared_pixels_match_the_original_files_within_the_resizing_tolerance(dataset):
    config, from_shards, manifest = dataset
    raw, shards = loading.load_splits(config), loading.load_splits(from_shards)
    raw_transform, shard_transform = (image_transform(config, augment=False),
                                      image_transform(from_shards, augment=False))
    assert shard_transform.wire_dtype == raw_transform.wire_dtype == manifest["pixel_dtype"]
    assert shard_transform.normalisation == raw_transform.normalisation
    scale = raw_transform.decoder.value_scale
    for original, stored in zip(raw.val[:6], shards.val[:6]):
        a = raw_transform.wire_pixels(original.path, None).astype(np.float64)
        b = shard_transform.wire_pixels(stored.path, None).astype(np.float64)
        assert a.shape == b.shape
        assert np.abs(a - b).mean() / scale < RESIZING_TOLERANCE, original.image_id


def test_pixel_types_follow_the_data(tmp_path):
    expected = {"eyepacs": "uint8", "consep": "uint8", "bigearthnet": "uint16"}
    for name, dtype in expected.items():
        config = tiny_config(tmp_path, name)
        assert image_transform(config, augment=False).wire_dtype == dtype


@pytest.fixture(scope="module")
def eyepacs_prepared(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eyepacs_run")
    config = demo_config(folder, "eyepacs")
    out = folder / "prepared"
    prepared.write(prepare.make_plan(config, size=48, records_per_shard=8), out, workers=1)
    return folder, out


@pytest.mark.slow
def test_a_run_trains_and_evaluates_from_prepared_data(eyepacs_prepared, tmp_path):
    folder, out = eyepacs_prepared
    results = train.train_and_evaluate(tiny_config(folder, "eyepacs", {
        "data.prepared": str(out), "demo.epochs": 1, "demo.bootstrap_samples": 2}), tmp_path)
    raw = loading.load_splits(demo_config(folder, "eyepacs"))
    assert results["split_sizes"] == {split: len(raw.split(split)) for split in SPLITS}
    saved = np.load(tmp_path / "predictions_test.npz")
    assert list(saved["image_ids"]) == [r.image_id for r in raw.test]


def test_prepared_data_that_do_not_fit_the_config_are_refused(eyepacs_prepared):
    folder, out = eyepacs_prepared
    config = demo_config(folder, "eyepacs")
    fits = prepared_config(config, out)
    loading.load_splits(fits)  # stored at 48 px, trained at 32: fine

    larger = prepared_config(demo_config(folder, "eyepacs", **{"demo.resolution": 64}), out)
    with pytest.raises(DataError, match="stores images at 48 px.*below "
                                        "config.data.resolution=64"):
        loading.load_splits(larger)
    graham = prepared_config(config, out)
    graham.eyepacs.preprocess = "graham"
    with pytest.raises(DataError, match="was decoded as ImageFileDecoder.*GrahamPreprocess"):
        loading.load_splits(graham)
    chest = prepared_config(demo_config(folder, "chexpert"), out)
    with pytest.raises(DataError, match="holds eyepacs, but config.dataset is 'chexpert'"):
        loading.load_splits(chest)
    with pytest.raises(DataError, match="holds no manifest.json"):
        loading.load_splits(prepared_config(config, folder / "nothing"))
    other = folder / "other_version"
    shutil.copytree(out, other)
    manifest = json.loads((other / prepared.MANIFEST_FILE).read_text())
    (other / prepared.MANIFEST_FILE).write_text(json.dumps({**manifest, "format_version": 0}))
    with pytest.raises(DataError, match="prepared in format 0; this jaxtl reads format 1"):
        loading.load_splits(prepared_config(config, other))
    fewer = folder / "fewer"
    shutil.copytree(out, fewer)
    (fewer / prepared.MANIFEST_FILE).write_text(json.dumps(
        {**manifest, "image_ids": manifest["image_ids"][1:] + ["someone_else"]}))
    with pytest.raises(DataError, match=f"1 images of this run are not in the prepared data "
                                        f".*first: {manifest['image_ids'][0]}"):
        loading.load_splits(prepared_config(config, fewer))


def test_consep_patches_of_another_size_are_refused(tmp_path):
    config = demo_config(tmp_path, "consep")
    out = tmp_path / "prepared"
    prepared.write(prepare.make_plan(config, records_per_shard=64), out, workers=1)
    other = prepared_config(config, out)
    other.consep.patch_size = 24
    with pytest.raises(DataError, match="prepared with .*'consep.patch_size': 16"):
        loading.load_splits(other)


def test_a_folder_of_another_prepare_is_refused(eyepacs_prepared, tmp_path):
    folder, out = eyepacs_prepared
    plan = prepare.make_plan(demo_config(folder, "eyepacs"), size=40, records_per_shard=8)
    with pytest.raises(DataError, match="holds a prepare of other data or settings"):
        prepared.write(plan, out, workers=1)


def shard_stats(folder):
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in folder.glob("shard-*.array_record")}


def prepare_command(config_root, out):
    return ["--config", "configs/eyepacs.py", f"--config.data.root={config_root}",
            "--config.data.resolution=32", "--out", str(out), "--size", "32",
            "--workers", "1", "--records_per_shard", "4"]


def test_a_killed_prepare_resumes_where_it_stopped(eyepacs_prepared, tmp_path):
    """The prepare is killed (SIGKILL, its whole process group) while it waits on an image that
    is a FIFO nobody writes to, after two shards were finished; run again, it keeps those
    shards, writes the rest and ends with the data an uninterrupted prepare writes."""
    folder, _ = eyepacs_prepared
    root = tmp_path / "eyepacs"
    shutil.copytree(loading.data_root(demo_config(folder, "eyepacs")), root)
    config = tiny_config(folder, "eyepacs", {"data.root": str(root), "data.resolution": 32})
    plan = prepare.make_plan(config, size=32, records_per_shard=4)
    blocking = plan.records[9]  # in the third shard
    os.rename(blocking.path, tmp_path / "kept")
    os.mkfifo(blocking.path)
    out = tmp_path / "prepared"
    process = subprocess.Popen([sys.executable, "-m", "jaxtl.commands.prepare",
                                *prepare_command(root, out)], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.time() + 300
    while len(shard_stats(out)) < 2 if out.exists() else True:
        assert process.poll() is None and time.time() < deadline, "prepare ended early"
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = shard_stats(out)
    assert sorted(finished) == ["shard-00000.array_record", "shard-00001.array_record"]
    assert not (out / prepared.MANIFEST_FILE).exists()
    os.unlink(blocking.path)
    os.rename(tmp_path / "kept", blocking.path)

    again, = run_programs([("jaxtl.commands.prepare", prepare_command(root, out))])
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"prepared {len(plan.records)} images of eyepacs" in again.stdout
    after = shard_stats(out)
    assert {name: after[name] for name in finished} == finished  # kept, not written again
    assert len(after) == plan.shards and not list(out.glob(".*.tmp"))
    fresh = tmp_path / "fresh"
    prepared.write(plan, fresh, workers=1)
    assert json.loads((out / prepared.MANIFEST_FILE).read_text()) == json.loads(
        (fresh / prepared.MANIFEST_FILE).read_text())
    for name in after:
        reader = prepared._reader(str(out / name))
        fresh_reader = prepared._reader(str(fresh / name))
        assert reader.read(0, reader.num_records()) == fresh_reader.read(
            0, fresh_reader.num_records())


def test_prepare_says_what_is_wrong_in_one_line(eyepacs_prepared, tmp_path):
    folder, out = eyepacs_prepared
    root = loading.data_root(demo_config(folder, "eyepacs"))
    runs = run_programs([
        ("jaxtl.commands.prepare", ["--config", "configs/eyepacs.py", f"--config.data.root={root}",
                           "--out", str(out), "--size", "40"]),
        ("jaxtl.main", ["--config", "configs/eyepacs.py", f"--config.data.root={root}",
                        f"--config.data.prepared={tmp_path}", "--workdir",
                        str(tmp_path / "run")]),
    ])
    for run in runs:
        assert run.returncode == 2 and not run.traceback, run.stderr[-2000:]
    assert "holds a prepare of other data or settings" in runs[0].stderr
    assert "holds no manifest.json" in runs[1].stderr
