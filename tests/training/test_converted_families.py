"""Each transformer-era family (ViT, ConvNeXt) trains on the demo data from a converted timm
checkpoint, as a researcher starts from RETFound or UNI: the same command killed with kill -9
and run again ends in the very run that was not interrupted, and the run is explained by
Grad-CAM on the family's default feature.

The families' tiny members (timm's test_vit and test_convnext) stand for their sizes: the same
code with fewer and narrower blocks. Their timm weights are the parity tests' synthetic ones
(tests/tools/golden), converted by the timm converter. The ViT runs with stochastic depth and
each block rematerialised, the ConvNeXt with stochastic depth.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import sys

import pytest
from forked_runs import Launcher
from interrupted_runs import assert_same_run, finish, killed_after_first_checkpoint

from jaxtl import models
from jaxtl.convert_weights.verify import Golden
from jaxtl.explain.explainer import Request, explain
from jaxtl.workdir import files as rundir

pytestmark = pytest.mark.slow

GOLDEN = pathlib.Path(__file__).resolve().parents[1] / "tools" / "golden"
RESOLUTION = 32
# 40 demo patients: 1 epoch of 8 steps, a checkpoint every 2 steps (killed after the first:
# the resumed run starts mid-epoch)
ARGS = ["--config", "configs/eyepacs.py", "--config.demo.num_patients=40",
        "--config.demo.image_size=48", f"--config.demo.resolution={RESOLUTION}",
        "--config.demo.batch_size=8", "--config.eval.batch_size=8", "--config.demo.epochs=1",
        "--config.demo.bootstrap_samples=10", "--config.train.log_every_steps=1",
        "--config.train.checkpoint_every_steps=2", "--config.train.keep_last_checkpoint=true",
        "--config.model.drop_path=0.1"]
FAMILIES = {"test_vit": ["--config.model.remat=true"], "test_convnext": []}
PATCH = 16  # test_vit's


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> pathlib.Path:
    """One cache for both families: the demo data is written once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def launcher(cache):
    """The runs are processes forked from one that imported jaxtl once (tests/forked_runs.py)."""
    with Launcher(dict(os.environ, JAXTL_CACHE=str(cache))) as started:
        yield started


@pytest.mark.parametrize("arch", sorted(FAMILIES))
def test_a_converted_checkpoint_trains_resumes_after_kill_9_and_explains(arch, tmp_path,
                                                                         cache, launcher):
    converted = Golden(GOLDEN).converted(arch, tmp_path)

    def command(workdir: pathlib.Path) -> list[str]:
        return [sys.executable, "-m", "jaxtl.main", *ARGS, *FAMILIES[arch],
                f"--config.demo.arch={arch}", f"--config.model.init={converted}",
                "--workdir", str(workdir)]

    env = dict(os.environ, JAXTL_CACHE=str(cache))
    finish(command(tmp_path / "reference"), env, launcher)
    results = json.loads((tmp_path / "reference" / rundir.RESULTS_FILE).read_text())
    assert results["config"]["model"]["init"] == str(converted)
    assert results["config"]["model"]["arch"] == arch

    killed = killed_after_first_checkpoint(command(tmp_path / "run"), env, tmp_path / "run",
                                           launcher)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    resumed = finish(command(tmp_path / "run"), env, launcher)
    assert "resumed from step 2 " in resumed.stderr, resumed.stderr[-3000:]
    assert_same_run(tmp_path / "run", tmp_path / "reference")

    summary = explain(tmp_path / "run", Request(split="test", images=2))
    assert summary["stage"] == models.gradcam_feature(arch)
    if arch == "test_vit":
        assert summary["map_size"] == [RESOLUTION // PATCH] * 2  # the patch grid
