"""python -m jaxtl.commands.bench prints the throughput JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_bench_prints_train_pipeline_and_compile_figures(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "jaxtl.commands.bench", "--config", "configs/eyepacs.py", "--steps", "2",
         "--pipeline_batches", "3", "--config.model.arch=resnet18",
         "--config.data.resolution=32", "--config.data.batch_size=4",
         "--config.data.num_workers=0", f"--config.data.cache_dir={tmp_path}",
         "--config.demo.num_patients=20", "--config.demo.image_size=40"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout[result.stdout.index("{"):])
    assert figures["arch"] == "resnet18" and figures["pipeline_data"] == "DEMO"
    for key in ("compile_seconds", "train_images_per_second", "pipeline_images_per_second"):
        assert figures[key] > 0, key
    # uint8 pixels cross to the device: 32 x 32 x 3 bytes, plus the int32 label, the valid flag
    # and the augmentation's warp (2 x 3 float32: EyePACS crops, flips and rotates on the device)
    assert figures["pixel_dtype"] == "uint8" and figures["augmentation_on_device"]
    assert figures["host_to_device_image_bytes_per_image"] == 32 * 32 * 3
    assert figures["host_to_device_bytes_per_image"] == 32 * 32 * 3 + 4 + 1 + 6 * 4


def _bench(tmp_path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jaxtl.commands.bench", "--config", "configs/eyepacs.py", "--steps", "1",
         "--pipeline_batches", "0", f"--config.data.cache_dir={tmp_path}",
         "--config.demo.num_patients=20", "--config.demo.image_size=40", *overrides],
        capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_bench_takes_any_architecture_and_can_skip_the_pipeline(tmp_path):
    result = _bench(tmp_path, "--config.model.arch=small_cnn", "--config.data.resolution=16",
                    "--config.data.batch_size=2")
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout[result.stdout.index("{"):])
    assert figures["arch"] == "small_cnn" and figures["timed_steps"] == 1
    assert "pipeline_images_per_second" not in figures
    # 4 x (3x3 bias-free conv + BatchNorm scale and bias), then the linear head to 5 grades.
    widths, fan_in, expected = (32, 64, 128, 256), 3, 0
    for width in widths:
        expected += 9 * fan_in * width + 2 * width
        fan_in = width
    assert figures["params"] == expected + 256 * 5 + 5


def test_bench_refuses_a_resolution_below_the_architecture_minimum(tmp_path):
    result = _bench(tmp_path, "--config.model.arch=densenet121", "--config.data.resolution=24")
    assert result.returncode == 2
    assert ("config.data.resolution is 24; densenet121 (config.model.arch) needs at least 32 px"
            in result.stderr)
    assert "Traceback" not in result.stderr
