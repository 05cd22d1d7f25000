"""Early stopping against hand-worked sequences of validation values."""

from __future__ import annotations

import json

import pytest

from jaxtl.optim.early_stopping import EarlyStopping


def stop_epoch(values, patience, min_delta=0.0, every=1):
    stopper = EarlyStopping(patience, min_delta)
    for i, value in enumerate(values):
        epoch = (i + 1) * every
        if stopper.update(epoch, value):
            return epoch, stopper.best_epoch
    return None, stopper.best_epoch


def test_stops_patience_epochs_after_the_last_improvement():
    #        epoch: 1    2    3    4    5    6    7
    values = [0.5, 0.6, 0.7, 0.65, 0.69, 0.7, 0.8]
    assert stop_epoch(values, patience=3) == (6, 3)  # 0.7 at epoch 6 does not beat 0.7
    assert stop_epoch(values, patience=4) == (None, 7)
    assert stop_epoch(values, patience=0) == (None, 7)  # 0: never stops


def test_min_delta_is_the_smallest_rise_that_counts():
    values = [0.5, 0.505, 0.509, 0.52, 0.521, 0.525, 0.529]
    # with min_delta 0.01: 0.52 (epoch 4) is the first value above 0.5 + 0.01, and nothing
    # after it is above 0.53
    assert stop_epoch(values, patience=3, min_delta=0.01) == (7, 4)
    assert stop_epoch(values, patience=2, min_delta=0.01) == (3, 1)
    assert stop_epoch(values, patience=2, min_delta=0.0) == (None, 7)


def test_patience_counts_epochs_not_evaluations():
    values = [0.5, 0.4, 0.4, 0.4]  # evaluated at epochs 2, 4, 6, 8
    assert stop_epoch(values, patience=3, every=2) == (6, 2)


def test_undefined_values_never_improve():
    assert stop_epoch([None, None, None], patience=2) == (3, 1)
    assert stop_epoch([None, 0.1, 0.1, 0.1], patience=2) == (4, 2)


def test_state_round_trips_through_json():
    stopper = EarlyStopping(3, 0.01)
    for epoch, value in enumerate([0.5, 0.7, 0.6], start=1):
        stopper.update(epoch, value)
    restored = EarlyStopping.restore(3, 0.01, json.loads(json.dumps(stopper.state())))
    assert restored == stopper
    assert [restored.update(4, 0.69), restored.update(5, 0.705)] == [False, True]
    assert restored.stopped and restored.stopped_epoch == 5 and restored.best_epoch == 2
    fresh = EarlyStopping(3, 0.0)
    fresh.update(1, None)
    assert EarlyStopping.restore(3, 0.0, json.loads(json.dumps(fresh.state()))) == fresh
    assert fresh.state()["best"] is None


@pytest.mark.parametrize("patience", [1, 2, 5])
def test_a_steadily_improving_run_is_never_stopped(patience):
    assert stop_epoch([i / 10 for i in range(10)], patience) == (None, 10)
