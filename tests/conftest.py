"""Shared fixtures and the one tiny-config helper of every test that trains.

Small datasets written in the real on-disk layouts live in `layouts/`, one module per dataset.
"""

from __future__ import annotations

import getpass
import os
import pathlib
import tempfile
from typing import Any

import jax
import ml_collections
import pytest
from absl import flags
from layouts import eyepacs

from jaxtl.config.files import load_config
from jaxtl.core import compile_cache, platforms

# XLA's cheapest compile effort in every test process and every program the tests start (through
# the environment): the tests' programs are small and compiled once, so compiling dominates their
# CPU time, and at this effort it takes about half as long; the same computation, its float sums
# in another order where XLA fuses them otherwise. Programs that run long enough for their run
# time to dominate take XLA's default (`xla_flags(fast=False)`): the demo commands, and the
# preemption runs (RandAugment, mixup and accumulation over many steps ran at half speed at the
# cheapest effort, measured); so does the bitwise equality of one and four devices'
# augmentations, which holds at the default effort (at the cheapest the sharded program rounds
# a few values in the last bit differently). Set before JAX's backend starts.
FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"
# what the user ran pytest with (pytest-xdist's workers inherit the flags set below)
_USER_XLA_FLAGS = os.environ.get("XLA_FLAGS", "").replace(FAST_COMPILE, "").strip()


def xla_flags(device_count: int | None = None, *, fast: bool = True) -> str:
    """XLA_FLAGS for a program the tests start: FAST_COMPILE unless `fast` is False, and
    `device_count` CPU devices."""
    devices = f" --xla_force_host_platform_device_count={device_count}" if device_count else ""
    return f"{_USER_XLA_FLAGS} {FAST_COMPILE if fast else ''}{devices}".strip()


os.environ["XLA_FLAGS"] = xla_flags()

# With libtpu installed (the test extra, for tests/engine/test_projection.py) and no TPU here,
# JAX uses the other platforms instead of probing for a TPU (and printing libtpu's warnings)
# in this process and every program the tests start.
platforms.skip_absent_tpu()

# Grain reads absl flags (as `python -m jaxtl.main` parses them); under pytest use the defaults.
flags.FLAGS.mark_as_parsed()

# One persistent compilation cache for every test process and every program the tests start
# (through the environment): the tiny runs of many tests compile the same programs. A test of
# where a run puts its own cache removes JAX_COMPILATION_CACHE_DIR from its subprocess's env.
TEST_CACHE_ROOT = pathlib.Path(os.environ.get("JAXTL_CACHE")
                               or pathlib.Path(tempfile.gettempdir()) / f"jaxtl-{getpass.getuser()}")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ.update(compile_cache.environment(
        TEST_CACHE_ROOT / "tests" / compile_cache.CACHE_SUBDIR))
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
compile_cache.enable(TEST_CACHE_ROOT)  # keeps that folder, caches every program


@pytest.fixture
def eyepacs_root(tmp_path: pathlib.Path) -> pathlib.Path:
    return eyepacs.write_eyepacs(tmp_path / "eyepacs", eyepacs.eyepacs_labels(30))


REPO = pathlib.Path(__file__).resolve().parents[1]
# Shared by every tiny run: no worker processes, small batches, small_cnn at 32 px (its
# convolutions and BatchNorm compile in a third of ResNet18's time; a test about a particular
# architecture sets its own), 20 bootstrap resamples on demo data and on a data.root alike
# (scikit-learn's checks per resample: the demo's 200 took a third of a tiny run, and a
# data.root's default 1000 took 17 of the 26 s of test_loop_failures.py's skip test).
TINY = {"data.num_workers": 0, "data.batch_size": 8, "eval.batch_size": 8,
        "data.resolution": 32, "model.arch": "small_cnn", "demo.arch": "small_cnn",
        "demo.resolution": 32, "demo.batch_size": 8, "demo.bootstrap_samples": 20,
        "train.log_every_steps": 1, "eval.bootstrap_samples": 20}
# Per built-in dataset: demo data and runs small enough to train in seconds on a 2-core CPU. A
# dataset package of its own (tests/data/squares/) passes its sizes as tiny_config overrides.
TINY_DATASET = {
    "eyepacs": {"demo.num_patients": 40, "demo.image_size": 48, "demo.epochs": 2},
    "chexpert": {"demo.num_patients": 60, "demo.image_size": 48, "demo.epochs": 1,
                 "demo.bootstrap_samples": 20, "train.log_every_steps": 5},
    "consep": {"demo.num_patients": 10, "demo.image_size": 96, "demo.resolution": 16,
               "demo.batch_size": 16, "demo.epochs": 1, "demo.bootstrap_samples": 20,
               "consep.patch_size": 16, "consep.val_tiles": 1, "eval.batch_size": 32,
               "train.log_every_steps": 5},
    # Segmentation: 10 tiles of 96 px, a small_cnn UNet on 32 px crops, narrow decoder, 1 epoch.
    "consep_seg": {"demo.num_patients": 10, "demo.image_size": 96, "demo.resolution": 32,
                   "demo.arch": "small_cnn", "model.arch": "small_cnn",
                   "demo.batch_size": 8, "demo.epochs": 1, "demo.bootstrap_samples": 20,
                   "consep_seg.val_tiles": 1, "consep_seg.crops_per_tile": 2,
                   "seg.decoder_channels": (16, 8), "eval.batch_size": 16,
                   "train.log_every_steps": 5},
    "bigearthnet": {"demo.num_patients": 60, "demo.epochs": 1, "demo.bootstrap_samples": 10,
                    "demo.arch": "small_cnn", "eval.batch_size": 16,
                    "train.log_every_steps": 5},
}
TINY_DATASET["cxr14"] = TINY_DATASET["chexpert"]
# TFDS demo data (prepared by TFDS) and your own data (csv, folders): small_cnn, one epoch.
TINY_OWN = {"demo.num_patients": 12, "demo.image_size": 48, "demo.epochs": 1,
            "demo.bootstrap_samples": 10, "demo.arch": "small_cnn", "model.arch": "small_cnn"}
TINY_DATASET |= {
    "tfds_retinopathy": TINY_OWN, "tfds_chexpert": TINY_OWN, "csv": TINY_OWN,
    "folders": TINY_OWN, "tfds_bigearthnet": {**TINY_OWN, "demo.image_size": 120},
}


def config_of(name: str) -> ml_collections.ConfigDict:
    """`configs/<name>.py` of the repository (`name:arg` passes an argument)."""
    stem, _, arg = name.partition(":")
    return load_config(f"{REPO / 'configs' / stem}.py" + (f":{arg}" if arg else ""))


def tiny_config(folder: pathlib.Path, config: str = "eyepacs",
                overrides: dict[str, Any] | None = None) -> ml_collections.ConfigDict:
    """`configs/<config>.py` (`name:arg` for an argument) shrunk to train in seconds on a CPU,
    with its cache under `folder`/cache (demo data unless `data.root` is given), then
    `overrides` ({"section.key": value})."""
    loaded = config_of(config)
    values = {"data.cache_dir": str(pathlib.Path(folder) / "cache"), **TINY,
              **TINY_DATASET.get(loaded.dataset, {}), **(overrides or {})}
    for key, value in values.items():
        section, name = key.split(".")
        loaded[section][name] = value
    return loaded


def stopped_at_first_checkpoint_then_resumed(config: ml_collections.ConfigDict,
                                             workdir: pathlib.Path, monkeypatch) -> dict:
    """Trains `config` in `workdir`, stopped right after its first checkpoint is saved, then
    runs the same command again; returns the resumed run's results."""
    from jaxtl.training import loop as train
    from jaxtl.workdir import checkpoints as checkpoint

    original = checkpoint.RunCheckpoints.save_latest

    class Preempted(Exception):
        pass

    def save_then_stop(self, step, *args, **kwargs):
        original(self, step, *args, **kwargs)
        self.wait()
        raise Preempted

    monkeypatch.setattr(checkpoint.RunCheckpoints, "save_latest", save_then_stop)
    with pytest.raises(Preempted):
        train.train_and_evaluate(config, workdir)
    monkeypatch.setattr(checkpoint.RunCheckpoints, "save_latest", original)
    return train.train_and_evaluate(config, workdir)


def pytest_collection_modifyitems(config, items: list[pytest.Item]) -> None:
    """Runs the modules that hold a `slow` test first, each module's tests kept together and in
    order. pytest-xdist (`--dist loadscope --no-loadscope-reorder`, pyproject.toml) then hands
    out the long modules while every worker is free, and the short ones fill in at the end
    instead of one long module starting last and running alone."""
    slow_modules = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_modules)
