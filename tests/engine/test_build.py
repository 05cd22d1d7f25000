"""Building a run: the training loss's class and positive weights from the config."""

from __future__ import annotations

import pytest
from conftest import config_of

from jaxtl.core import tasks
from jaxtl.core.errors import ConfigError
from jaxtl.data.records import DatasetSplits, Record
from jaxtl.engine import build as run


def splits_of(task, labels):
    records = [Record(str(i), "", label, str(i)) for i, label in enumerate(labels)]
    return DatasetSplits("toy", task, train=records, val=[], test=[])


def test_balanced_class_weights_for_softmax_and_positive_weights_for_multilabel():
    config = config_of("eyepacs")
    softmax = splits_of(tasks.multiclass(["a", "b"]), [0, 0, 0, 1])
    assert run.loss_weights(config, softmax) is None
    config.train.class_weights = "balanced"
    assert run.loss_weights(config, softmax) == pytest.approx({"a": 4 / 6, "b": 4 / 2})
    with pytest.raises(ConfigError, match="train.positive_weights instead"):
        run.loss_weights(config, splits_of(tasks.multilabel(["x"]), [(1,), (0,)]))
    config.train.class_weights = "none"
    config.train.positive_weights = "balanced"
    multilabel = splits_of(tasks.multilabel(["x", "y"]), [(1, 0), (0, 0), (0, 1), (0, -1)])
    assert run.loss_weights(config, multilabel) == pytest.approx({"x": 3.0, "y": 2.0})
    with pytest.raises(ConfigError, match="train.class_weights instead"):
        run.loss_weights(config, softmax)
