"""python -m jaxtl.bench prints the throughput JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_bench_prints_train_pipeline_and_compile_figures(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "jaxtl.bench", "--config", "configs/eyepacs.py", "--steps", "2",
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
