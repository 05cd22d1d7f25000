"""A tiny ViT (timm's test_vit) trains from the demo config alone with stochastic depth and
each block rematerialised, resumes bitwise after a stop at its first checkpoint, and is explained by Grad-CAM on its token
grid (the registry's default feature)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import stopped_at_first_checkpoint_then_resumed, tiny_config

from jaxtl import models
from jaxtl.explain.explainer import Request, explain
from jaxtl.training import loop as train


@pytest.mark.slow
def test_tiny_vit_trains_resumes_bitwise_and_explains(tmp_path, monkeypatch):
    config = tiny_config(tmp_path, "eyepacs", {"demo.arch": "test_vit", "model.arch": "test_vit",
                                               "model.drop_path": 0.1, "model.remat": True,
                                               "demo.epochs": 2})
    whole = train.train_and_evaluate(config, tmp_path / "whole")
    resumed = stopped_at_first_checkpoint_then_resumed(config, tmp_path / "resumed", monkeypatch)

    def losses(workdir):
        return [r["loss"] for r in map(json.loads, (workdir / "metrics.jsonl").read_text()
                                       .splitlines()) if r["split"] == "train"]

    assert len(losses(tmp_path / "whole")) == whole["steps"] >= 2
    np.testing.assert_array_equal(losses(tmp_path / "resumed"), losses(tmp_path / "whole"))
    assert resumed["val"]["kappa"] == whole["val"]["kappa"]
    summary = explain(tmp_path / "whole", Request(split="test", images=2))
    assert summary["stage"] == models.gradcam_feature("test_vit") == "block4"
    assert summary["map_size"] == [2, 2]  # 32 px images, 16 px patches
