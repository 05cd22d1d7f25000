"""Every optimizer and every schedule trains a (tiny) demo run selected by the config alone.

The learning rates the run logs must follow the configured schedule's shape, checked against
the schedule's definition in epochs (not against jaxtl's own schedule code). A schedule is the
learning rate any optimizer is built with (jaxtl.optim.make_optimizer passes it to the
optimizer's builder), so each schedule runs once, with the optimizers in turn, and each
optimizer runs at least once; CoolMomentum's published form (flat schedule) is one of them.
"""

from __future__ import annotations

import itertools
import json
import math

import pytest
from conftest import tiny_config

from jaxtl import optim
from jaxtl.training import loop as train

pytestmark = pytest.mark.slow

OPTIMIZERS = {"cool_momentum": 0.05, "sgd": 0.05, "adam": 0.003}  # in turn along the schedules
EPOCHS = 4


@pytest.fixture(scope="module")
def demo_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("demo-cache")


def logged_learning_rates(workdir) -> list[tuple[float, float]]:
    """(epoch, lr) of every logged training step."""
    lines = (json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines())
    return [(row["epoch"], row["lr"]) for row in lines if "lr" in row]


PAIRS = [(name, schedule) for name, schedule in zip(
    itertools.cycle(OPTIMIZERS), sorted(optim.SCHEDULES))]


def test_every_optimizer_and_every_schedule_runs():
    assert {name for name, _ in PAIRS} == set(OPTIMIZERS)
    assert {schedule for _, schedule in PAIRS} == set(optim.SCHEDULES)
    assert ("cool_momentum", "flat") in PAIRS


@pytest.mark.parametrize("name, schedule", PAIRS)
def test_optimizer_and_schedule_train_a_demo_run_from_the_config(tmp_path, demo_cache, name,
                                                                 schedule):
    config = tiny_config(tmp_path)
    config.data.cache_dir = str(demo_cache)
    config.demo.arch = config.model.arch = "small_cnn"
    config.demo.resolution = config.data.resolution = 16
    config.demo.num_patients = 20
    config.demo.epochs = EPOCHS
    config.demo.bootstrap_samples = 0
    # the schedule is checked on the training steps' logged rates: validate and save once, at
    # the end (three validations and checkpoint saves fewer per run)
    config.train.eval_every_epochs = config.train.checkpoint_every_epochs = EPOCHS
    config.optim.name = name
    config.optim.lr = OPTIMIZERS[name]
    config.optim.schedule = schedule
    config.optim.warmup_epochs = 1.0
    config.optim.decay_epochs = (2,)
    config.optim.cycle_epochs = 2.0
    workdir = tmp_path / "run"

    train.train_and_evaluate(config, workdir)

    results = json.loads((workdir / "results.json").read_text())
    assert results["config"]["optim"]["name"] == name
    assert results["config"]["optim"]["schedule"] == schedule
    assert math.isfinite(results["test"]["kappa"])
    rates = logged_learning_rates(workdir)
    assert len(rates) >= 2 * EPOCHS  # log_every_steps = 1, at least two steps per epoch
    peak = OPTIMIZERS[name]
    lrs = [lr for _, lr in rates]
    if schedule == "flat":
        assert lrs == pytest.approx([peak] * len(lrs))
    elif schedule == "sudden":  # x decay_factor from epoch 2 on
        for epoch, lr in rates:
            expected = peak * (config.optim.decay_factor if epoch > 2 + 1e-9 else 1.0)
            assert lr == pytest.approx(expected, rel=1e-5), (epoch, lr)
    elif schedule == "gradual":  # linear warmup over epoch 1, then decay towards 0
        warm = [lr for epoch, lr in rates if epoch <= 1]
        decay = [lr for epoch, lr in rates if epoch > 1]
        assert warm == sorted(warm) and warm[0] < warm[-1] <= peak * (1 + 1e-6)
        assert decay == sorted(decay, reverse=True) and decay[-1] < 0.2 * peak
    elif schedule == "triangular":  # up and down every cycle_epochs, between min and peak
        low = peak * config.optim.min_lr_fraction
        assert all(low * (1 - 1e-5) <= lr <= peak * (1 + 1e-5) for lr in lrs)
        first_peak = max(range(len(rates)), key=lambda i: rates[i][1] if rates[i][0] <= 2 else 0)
        assert 0.5 <= rates[first_peak][0] <= 1.5  # the first cycle peaks mid-cycle
        assert lrs[first_peak + 1] < lrs[first_peak]
    elif schedule == "one_cycle":  # rises to the peak over warmup, then falls below the start
        top = lrs.index(max(lrs))
        assert lrs[:top + 1] == sorted(lrs[:top + 1]) and max(lrs) <= peak * (1 + 1e-6)
        assert lrs[top:] == sorted(lrs[top:], reverse=True) and lrs[-1] < lrs[0]
    else:
        pytest.fail(f"no expectation written for the new schedule {schedule!r}")
