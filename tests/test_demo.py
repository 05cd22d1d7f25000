"""The README's main command on the built-in demo data: learns the grades (kappa >= 0.6)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_demo_command_trains_to_kappa_above_0_6_and_says_demo(tmp_path):
    env = dict(os.environ, JAXTL_CACHE=str(tmp_path / "cache"))
    result = subprocess.run(
        [sys.executable, "-m", "jaxtl.main", "--config", "configs/eyepacs.py",
         "--workdir", str(tmp_path / "run")],
        env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "DEMO RUN: no data.root set" in result.stderr
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["demo"] is True
    assert results["config"]["model"]["arch"] == "resnet18"
    assert results["val"]["kappa"] >= 0.6, results["val"]
    assert results["test"]["kappa"] >= 0.6, results["test"]
    metrics = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert metrics and all(json.loads(line)["demo"] is True for line in metrics)
    demo_csv = next((tmp_path / "cache" / "demo").glob("eyepacs-*/trainLabels.csv"))
    assert demo_csv.read_text().startswith("image,level\n")
