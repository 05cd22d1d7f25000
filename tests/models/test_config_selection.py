"""Choosing an architecture by config alone: input-size validation and end-to-end demo training.

Every registered architecture is accepted by the config at its smallest input and refused,
with a config error that names the key, below it. End-to-end training through
`jaxtl.training.loop.train_and_evaluate` (what `python -m jaxtl.main` calls), selected only by
`config.demo.arch`, runs for the cheapest member of every family (tests/models/zoo_costs.py)
whose cost the CI machine can carry by the rules stated in zoo_costs.py, except the demo's own
architecture (resnet18), which the README's demo command trains (tests/test_demo_commands.py),
and small_cnn, which every tiny demo run of the tests selects by `config.demo.arch`.
The deeper members of a family run the same code with more blocks or wider layers, and the loop
is the same for every family, so the runs of the tests cover every kind of variables and random
streams it carries (zoo_costs.py: batch statistics; a dropout stream and no batch statistics).
The others (vgg16: 134 M parameters to initialise and checkpoint; efficientnet, nfnet,
densenet121, inception_v3, resnetv2: train steps that cost 30-60 s of CPU) run their training-mode
forward and backward passes in test_zoo.py or their family's own tests.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import TINY, config_of, tiny_config
from programs import run_programs
from zoo_costs import cheapest_member, too_costly_to_train

from jaxtl.config import demo_settings as demo
from jaxtl.config import validation as configuration
from jaxtl.config.base import COMMON
from jaxtl.core.errors import ConfigError
from jaxtl.models import families, list_models, min_input_size
from jaxtl.training import loop as train

CONFIG_FLOOR = 16  # configuration: data.resolution and demo.resolution start at 16 px



def smallest_resolution(arch: str) -> int:
    return max(CONFIG_FLOOR, min_input_size(arch))


def test_min_input_sizes_are_those_the_models_enforce():
    # The models raise below these sizes (tests/models/test_{vgg,densenet,inception,small_cnn,
    # vit,convnext}.py check both sides of each limit); the other families pad every
    # downsampling layer. A ViT needs one patch, a ConvNeXt 32 px (unpadded strides 4, 2, 2, 2).
    expected = {"vgg16": 32, "vgg16_bn": 32, "densenet121": 32, "densenet169": 32,
                "densenet201": 32, "inception_v3": 75, "small_cnn": 16,
                **{arch: 32 for arch in families()["convnext"]},
                **{arch: 14 if "patch14" in arch else 16 for arch in families()["vit"]}}
    assert {arch: min_input_size(arch) for arch in list_models()} == {
        arch: expected.get(arch, 1) for arch in list_models()}


@pytest.mark.parametrize("arch", list_models())
def test_demo_arch_alone_selects_the_model(arch):
    config = config_of("eyepacs")
    config.demo.arch = arch
    config.demo.resolution = smallest_resolution(arch)
    demo.apply(config)
    configuration.validate(config)
    assert config.model.arch == arch and config.data.resolution == smallest_resolution(arch)


@pytest.mark.parametrize("arch", [a for a in list_models() if min_input_size(a) > CONFIG_FLOOR])
def test_too_small_demo_resolution_is_a_config_error(arch):
    config = config_of("eyepacs")
    config.demo.arch = arch
    config.demo.resolution = min_input_size(arch) - 1
    demo.apply(config)
    with pytest.raises(ConfigError) as info:
        configuration.validate(config)
    message = str(info.value)
    for key in ("config.demo.resolution", "config.data.resolution"):
        assert f"{key} is {min_input_size(arch) - 1}; {arch}" in message
        assert f"needs at least {min_input_size(arch)} px: raise {key}" in message


def test_too_small_data_resolution_with_a_root_is_a_config_error():
    config = config_of("eyepacs")
    config.data.root = "/data/eyepacs"
    config.model.arch = "inception_v3"
    config.data.resolution = 64
    demo.apply(config)  # a data root: the demo settings change nothing
    with pytest.raises(ConfigError, match=r"config.data.resolution is 64; inception_v3 "
                                          r"\(config.model.arch\) needs at least 75 px") as info:
        configuration.validate(config)
    assert "config.demo.resolution" not in str(info.value)


def test_command_line_reports_a_too_small_resolution_before_any_work(tmp_path):
    # as `python -m jaxtl.main` runs it, forked from a process that imported jaxtl once
    [result] = run_programs([(
        "jaxtl.main", ["--config", "configs/eyepacs.py", "--workdir", str(tmp_path / "run"),
                       "--config.demo.arch=inception_v3", "--config.demo.resolution=64"],
        {"JAXTL_CACHE": str(tmp_path / "cache")})], timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "config.demo.resolution is 64; inception_v3 (config.demo.arch) needs at least 75 px" \
        in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "cache").exists()  # refused before the demo data was written


def trained_here() -> list[str]:
    """The cheapest member of each family, unless even that is too slow for CI or it is trained
    by config alone elsewhere: the demo's own architecture by the README's demo command
    (tests/test_demo_commands.py), the tiny runs' (conftest.TINY) by every tiny demo run."""
    elsewhere = {COMMON["demo"]["arch"].default, TINY["demo.arch"]}
    return [arch for arch in map(cheapest_member, families())
            if not too_costly_to_train(arch) and arch not in elsewhere]


def tiny_demo_config(folder: Path, arch: str):
    """Two train steps of batch 8 on 20 tiny demo images at the architecture's smallest input,
    the architecture chosen by `config.demo.arch` alone."""
    return tiny_config(folder, overrides={
        "demo.num_patients": 10, "demo.image_size": 32, "demo.arch": arch, "demo.epochs": 1,
        "demo.resolution": smallest_resolution(arch)})


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory) -> Path:
    """One workdir per architecture of `trained_here()`, trained as `python -m jaxtl.main`
    trains (`train_and_evaluate`)."""
    root = tmp_path_factory.mktemp("trained_by_config")
    for arch in trained_here():
        train.train_and_evaluate(tiny_demo_config(root, arch), root / arch)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("arch", trained_here())
def test_config_alone_trains_the_family(arch, trained_runs):
    run = trained_runs / arch
    results = json.loads((run / "results.json").read_text())
    assert results["demo"] is True and results["steps"] == 2
    assert results["config"]["model"]["arch"] == arch
    assert results["config"]["data"]["resolution"] == smallest_resolution(arch)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if r["split"] == "train"]
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses)
    for split in ("val", "test"):
        assert results[split]["count"] == results["split_sizes"][split] > 0
        assert sum(map(sum, results[split]["confusion_matrix"])) == results["split_sizes"][split]
