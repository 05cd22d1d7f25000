"""python -m jaxtl.commands.plan: a run's steps compiled for a TPU topology, per chip."""

from __future__ import annotations

import importlib.util
import json

import pytest
from programs import run_programs

DEMO = ["--config", "configs/eyepacs.py", "--config.demo.arch=small_cnn",
        "--config.demo.resolution=16", "--config.demo.batch_size=16",
        "--config.eval.batch_size=16", "--config.demo.num_patients=20",
        "--config.demo.image_size=40"]


def test_check_and_the_errors_a_plan_stops_with(tmp_path):
    cache = f"--config.data.cache_dir={tmp_path}"
    checked, unknown, malformed = run_programs([
        ("jaxtl.commands.plan", [*DEMO, cache, "--topology", "v5e:2x4", "--check"]),
        ("jaxtl.commands.plan", [*DEMO, cache, "--topology", "v9z:2x4"]),
        ("jaxtl.commands.plan", [*DEMO, cache, "--topology", "v5e"])])
    assert checked.returncode == 0, checked.stderr[-2000:]
    assert "ok:" in checked.stdout and "topology v5e:2x4: 8 v5e chips" in checked.stdout
    for run in (unknown, malformed):
        assert run.returncode == 2 and not run.traceback
        assert run.stderr.strip().splitlines()[-1].startswith("error: TPU topology ")
    assert not list(tmp_path.iterdir())  # an error before reading or writing any data


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("libtpu") is None,
                    reason="libtpu is not installed (pip install -e '.[tpu]')")
def test_json_figures_of_a_demo_run_on_a_v5e_8(tmp_path):
    (run,) = run_programs([("jaxtl.commands.plan", [
        *DEMO, f"--config.data.cache_dir={tmp_path}", "--topology", "v5e:2x4", "--json"])])
    assert run.returncode == 0, run.stderr[-3000:]
    figures = json.loads(run.stdout[run.stdout.index("{"):])
    assert figures["demo"] and figures["arch"] == "small_cnn" and figures["chips"] == 8
    assert figures["batch_size"] == 16 and figures["images_per_chip"] == 2
    assert figures["fits"] and figures["hbm_bytes"] == 16 * 2**30
    total = (figures["parameter_bytes"] + figures["optimizer_state_bytes"]
             + figures["activation_and_temporary_bytes"])
    assert total == figures["train_memory_bytes"] < figures["hbm_bytes"]
    step = max(figures["train_flops_per_image"] * 2 / 197e12,
               figures["train_bytes_accessed_per_step"] / 819e9)
    assert figures["train_step_seconds"] == pytest.approx(step)
    assert figures["images_per_second_per_chip"] == pytest.approx(2 / step)
    assert figures["images_per_second"] == pytest.approx(16 / step)
    assert figures["mfu"] == pytest.approx(figures["train_flops_per_image"] * 2 / 197e12 / step)
    assert 0 < figures["mfu"] <= 1 and figures["bound"] in ("compute", "memory")
    assert figures["train_all_reduces"] >= 1 and figures["compile_seconds"] > 0
    assert "libtpu" not in run.stdout
