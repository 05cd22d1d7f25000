"""Learning-rate schedules against their formulas, written out step by step in plain Python."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import config_of

from jaxtl.optim import schedules


def optim_config(**values):
    config = config_of("eyepacs").optim
    for key, value in values.items():
        config[key] = value
    return config


def make_schedule(optim, steps_per_epoch, total_steps, batch_size=64):
    """The schedule; the batch size matters only with optim.base_lr set."""
    return schedules.make_schedule(optim, steps_per_epoch, total_steps, batch_size)


def values(schedule, steps):
    return np.array([float(schedule(s)) for s in steps])


def test_flat_schedule_is_constant():
    schedule = make_schedule(optim_config(schedule="flat", lr=0.3), 10, 100)
    np.testing.assert_allclose(values(schedule, [0, 50, 99, 150]), 0.3, rtol=1e-7)


def test_gradual_cosine_is_linear_warmup_then_half_cosine_to_the_end_fraction():
    lr, end = 0.2, 0.1
    schedule = make_schedule(optim_config(schedule="gradual", lr=lr, warmup_epochs=2.0,
                                          gradual_decay="cosine", end_lr_fraction=end), 10, 100)
    steps = np.arange(0, 101)
    expected = [lr * t / 20 if t < 20 else
                lr * end + (lr - lr * end) * 0.5 * (1 + math.cos(math.pi * (t - 20) / 80))
                for t in steps]
    np.testing.assert_allclose(values(schedule, steps), expected, rtol=1e-5, atol=1e-8)
    assert float(schedule(20)) == pytest.approx(lr)  # the peak is reached after warmup_epochs
    assert float(schedule(100)) == pytest.approx(lr * end)
    assert float(schedule(1000)) == pytest.approx(lr * end)  # and stays there


def test_gradual_cosine_to_zero_is_optax_warmup_cosine_decay():
    import optax

    schedule = make_schedule(optim_config(schedule="gradual", lr=0.2, warmup_epochs=1.0,
                                          gradual_decay="cosine", end_lr_fraction=0.0), 7, 70)
    reference = optax.warmup_cosine_decay_schedule(0.0, 0.2, warmup_steps=7, decay_steps=70)
    steps = np.arange(0, 75)
    np.testing.assert_allclose(values(schedule, steps), values(reference, steps), atol=1e-7)


def test_gradual_exponential_decays_by_a_constant_factor_per_step():
    lr, end = 0.1, 0.01
    schedule = make_schedule(optim_config(schedule="gradual", lr=lr, warmup_epochs=1.0,
                                          gradual_decay="exponential", end_lr_fraction=end),
                             10, 50)
    steps = np.arange(10, 51)
    expected = lr * end ** ((steps - 10) / 40)
    np.testing.assert_allclose(values(schedule, steps), expected, rtol=1e-5)
    ratios = values(schedule, steps[1:]) / values(schedule, steps[:-1])
    np.testing.assert_allclose(ratios, end ** (1 / 40), rtol=1e-5)
    np.testing.assert_allclose(values(schedule, [0, 5]), [0.0, lr / 2], rtol=1e-6)


def test_gradual_without_warmup_starts_at_the_peak():
    schedule = make_schedule(optim_config(schedule="gradual", lr=0.1, warmup_epochs=0.0,
                                          end_lr_fraction=0.0), 10, 100)
    assert float(schedule(0)) == pytest.approx(0.1)


def test_sudden_multiplies_by_factor_at_each_epoch():
    schedule = make_schedule(
        optim_config(schedule="sudden", lr=0.1, decay_epochs=(3, 6), decay_factor=0.5), 10, 100)
    np.testing.assert_allclose(values(schedule, [0, 29, 30, 59, 60, 99]),
                               [0.1, 0.1, 0.05, 0.05, 0.025, 0.025], rtol=1e-6)


def test_sudden_epochs_are_converted_with_the_steps_per_epoch():
    schedule = make_schedule(
        optim_config(schedule="sudden", lr=1.0, decay_epochs=(1.5,), decay_factor=0.1), 4, 40)
    np.testing.assert_allclose(values(schedule, [5, 6]), [1.0, 0.1], rtol=1e-6)


def test_triangular_rises_and_falls_linearly_each_cycle():
    lr, low = 0.1, 0.25
    schedule = make_schedule(optim_config(schedule="triangular", lr=lr, min_lr_fraction=low,
                                          cycle_epochs=2.0), 5, 100)
    cycle = 10  # 2 epochs of 5 steps
    steps = np.arange(0, 35)
    expected = [lr * low + (lr - lr * low) * (1 - abs(2 * (t % cycle) / cycle - 1))
                for t in steps]
    np.testing.assert_allclose(values(schedule, steps), expected, rtol=1e-6)
    np.testing.assert_allclose(values(schedule, [0, 5, 10, 15, 20]),
                               [lr * low, lr, lr * low, lr, lr * low], rtol=1e-6)


def test_one_cycle_rises_with_a_cosine_then_falls_with_a_cosine():
    lr, start, end = 0.4, 0.04, 0.001
    schedule = make_schedule(optim_config(schedule="one_cycle", lr=lr, warmup_epochs=3.0,
                                          min_lr_fraction=start, end_lr_fraction=end), 10, 100)

    def cosine(a, b, p):
        return b + (a - b) * 0.5 * (1 + math.cos(math.pi * p))

    steps = np.arange(0, 101)
    expected = [cosine(lr * start, lr, t / 30) if t < 30 else cosine(lr, lr * end, (t - 30) / 70)
                for t in steps]
    np.testing.assert_allclose(values(schedule, steps), expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(values(schedule, [0, 30, 100]), [lr * start, lr, lr * end],
                               rtol=1e-5)


def test_one_cycle_equals_optax_cosine_onecycle_with_the_same_settings():
    import optax

    # optax: start peak / div_factor, end start / final_div_factor, rise over pct_start
    schedule = make_schedule(optim_config(schedule="one_cycle", lr=1.0, warmup_epochs=3.0,
                                          min_lr_fraction=1 / 25, end_lr_fraction=1 / 25e4),
                             10, 100)
    reference = optax.cosine_onecycle_schedule(100, 1.0, pct_start=0.3, div_factor=25.0,
                                               final_div_factor=1e4)
    steps = np.arange(0, 101)
    np.testing.assert_allclose(values(schedule, steps), values(reference, steps), rtol=1e-4,
                               atol=1e-7)


@pytest.mark.parametrize("schedule", sorted(schedules.SCHEDULES))
@pytest.mark.parametrize("base_lr, batch_size", [(1e-3, 64), (5e-4, 1024), (2e-3, 256)])
def test_base_lr_scales_the_peak_with_the_batch_as_lr_would(schedule, base_lr, batch_size):
    """Every schedule with base_lr equals the same schedule with lr = base_lr * batch / 256."""
    settings = {"schedule": schedule, "warmup_epochs": 2.0, "end_lr_fraction": 0.1,
                "decay_epochs": (3,), "cycle_epochs": 2.0}
    scaled = make_schedule(optim_config(lr=0.05, base_lr=base_lr, **settings), 5, 40,
                           batch_size=batch_size)
    by_hand = make_schedule(optim_config(lr=base_lr * batch_size / 256, **settings), 5, 40,
                            batch_size=batch_size)
    steps = np.arange(0, 41)
    np.testing.assert_allclose(values(scaled, steps), values(by_hand, steps), rtol=1e-6)
    peak = max(values(by_hand, steps))
    assert peak == pytest.approx(base_lr * batch_size / 256, rel=1e-6)


def test_without_base_lr_the_batch_size_does_not_change_the_schedule():
    small = make_schedule(optim_config(schedule="flat", lr=0.3), 10, 100, batch_size=8)
    large = make_schedule(optim_config(schedule="flat", lr=0.3), 10, 100, batch_size=4096)
    assert float(small(0)) == float(large(0)) == pytest.approx(0.3)


def run_config(**optim_values):
    config = config_of("eyepacs")
    config.data.batch_size = 32
    for key, value in optim_values.items():
        config.optim[key] = value
    return config


def test_resolve_lr_writes_the_scaled_peak_into_optim_lr():
    config = run_config(base_lr=2e-3)
    schedules.resolve_lr(config, set_by_user=("optim.base_lr", "data.batch_size"))
    assert config.optim.lr == pytest.approx(2e-3 * 32 / 256)
    again = config.optim.lr  # a resumed run resolves to the same rate
    schedules.resolve_lr(config, set_by_user=())
    assert config.optim.lr == again
    plain = run_config(lr=0.2)
    schedules.resolve_lr(plain, set_by_user=("optim.lr",))
    assert plain.optim.lr == 0.2


def test_lr_and_base_lr_both_given_is_refused_in_one_line():
    from jaxtl.core.errors import ConfigError

    config = run_config(lr=0.2, base_lr=1e-3)
    with pytest.raises(ConfigError) as error:
        schedules.resolve_lr(config, set_by_user=("optim.lr", "optim.base_lr"))
    message = str(error.value)
    assert "\n" not in message
    assert "config.optim.lr=0.2 and config.optim.base_lr=0.001 are both set" in message
    assert config.optim.lr == 0.2  # nothing written


def test_a_run_given_lr_and_base_lr_is_refused_before_its_folder_exists(tmp_path):
    from conftest import tiny_config

    from jaxtl.core.errors import ConfigError
    from jaxtl.training import loop

    config = tiny_config(tmp_path, overrides={"optim.lr": 0.1, "optim.base_lr": 1e-3})
    with pytest.raises(ConfigError, match="config.optim.lr=0.1 and config.optim.base_lr=0.001 "
                                          "are both set"):
        loop.train_and_evaluate(config, tmp_path / "run",
                                set_by_user=("optim.lr", "optim.base_lr"))
    assert not (tmp_path / "run").exists()

