"""python -m jaxtl.commands.bench: the documented command on the demo settings, in minutes on a
CPU, saying what it does before each slow stage; the throughput JSON; its refusals."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import pytest
from conftest import config_of
from programs import other_libraries_info, run_programs

# Demo data small enough to write in seconds; the demo settings (model, resolution, batch) stay.
SMALL_DEMO_DATA = ["--config.demo.num_patients=20", "--config.demo.image_size=40"]
# What the bench says on stderr, in this order, before and during each slow stage.
STAGES = ("DEMO RUN: no data.root set", "DEMO RUN: demo settings (config.demo): model.arch",
          "DEMO: writing synthetic eyepacs data", "compiling the train step",
          "one warm-up step, then 2 timed steps", "train steps: step 2/2 (100%)",
          "starting the input pipeline", "input batches: batch 3/3 (100%)")


def _figures(stdout: str) -> dict:
    return json.loads(stdout[stdout.index("{"):])


@pytest.mark.slow
def test_the_documented_bench_follows_the_demo_settings_in_under_two_minutes(tmp_path):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(
        [sys.executable, "-m", "jaxtl.commands.bench", "--config", "configs/eyepacs.py",
         "--steps", "2", "--pipeline_batches", "3", f"--config.data.cache_dir={tmp_path}",
         *SMALL_DEMO_DATA], check=False, capture_output=True, text=True, timeout=600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert result.returncode == 0, result.stderr[-3000:]
    # Its CPU time (all threads): the work, whatever else the machine runs; the wall time of a
    # test on a shared machine is not.
    cpu_seconds = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu_seconds < 120, cpu_seconds
    demo = config_of("eyepacs").demo
    figures = _figures(result.stdout)
    assert (figures["arch"], figures["resolution"], figures["batch_size"]) == (
        demo.arch, demo.resolution, demo.batch_size)
    assert figures["demo"] and figures["pipeline_data"] == "DEMO"
    assert figures["pipeline_workers"] == demo.num_workers
    for key in ("compile_seconds", "train_images_per_second", "pipeline_images_per_second"):
        assert figures[key] > 0, key
    # uint8 pixels cross to the device, plus the int32 label, the valid flag and the
    # augmentation's warp (2 x 3 float32: EyePACS crops, flips and rotates on the device)
    pixels = demo.resolution * demo.resolution * 3
    assert figures["pixel_dtype"] == "uint8" and figures["augmentation_on_device"]
    assert figures["host_to_device_image_bytes_per_image"] == pixels
    assert figures["host_to_device_bytes_per_image"] == pixels + 4 + 1 + 6 * 4
    # piped: its stages in order, plain progress lines, no other library's INFO lines
    positions = [result.stderr.find(stage) for stage in STAGES]
    assert -1 not in positions and positions == sorted(positions), (positions, result.stderr)
    assert "\r" not in result.stdout + result.stderr
    assert other_libraries_info(result.stderr) == []
    assert "leaked shared_memory" not in result.stderr


@pytest.mark.slow
def test_bench_takes_any_architecture_and_can_skip_the_pipeline(tmp_path):
    (result,) = run_programs([("jaxtl.commands.bench", [
        "--config", "configs/eyepacs.py", "--steps", "1", "--pipeline_batches", "0",
        f"--config.data.cache_dir={tmp_path}", *SMALL_DEMO_DATA, "--config.demo.arch=small_cnn",
        "--config.demo.resolution=16", "--config.demo.batch_size=2"])], timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = _figures(result.stdout)
    assert figures["arch"] == "small_cnn" and figures["timed_steps"] == 1
    assert "pipeline_images_per_second" not in figures
    # 4 x (3x3 bias-free conv + BatchNorm scale and bias), then the linear head to 5 grades.
    widths, fan_in, expected = (32, 64, 128, 256), 3, 0
    for width in widths:
        expected += 9 * fan_in * width + 2 * width
        fan_in = width
    assert figures["params"] == expected + 256 * 5 + 5


def test_bench_refuses_a_resolution_below_the_minimum_and_a_model_the_demo_replaces(tmp_path):
    common = ["--config", "configs/eyepacs.py", "--steps", "1", "--pipeline_batches", "0",
              f"--config.data.cache_dir={tmp_path}", *SMALL_DEMO_DATA]
    small, replaced = run_programs([
        ("jaxtl.commands.bench", [*common, "--config.demo.arch=densenet121",
                                  "--config.demo.resolution=24"]),
        ("jaxtl.commands.bench", [*common, "--config.model.arch=resnet50"])])
    for result in (small, replaced):
        assert result.returncode == 2 and not result.traceback, result.stderr[-3000:]
    assert ("config.data.resolution is 24; densenet121 (config.model.arch) needs at least 32 px"
            in small.stderr)
    assert ("config.model.arch='resnet50' is set, but this run has no data.root, so it is a "
            "demo run" in replaced.stderr and "--config.demo.arch" in replaced.stderr)
    assert not any(tmp_path.iterdir())  # refused before any data was written
