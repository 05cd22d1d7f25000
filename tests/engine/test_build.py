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


@pytest.mark.parametrize("strategy, trained", [("full", "all"), ("linear_probe", "head")])
def test_the_parameter_record_counts_what_the_plan_trains(tmp_path, strategy, trained):
    """small_cnn (widths 32, 64, 128, 256: 3x3 convolutions without bias, BatchNorm scale and
    offset) with a 3-class linear head, built as shapes only."""
    import jax
    from conftest import tiny_config

    from jaxtl.engine import steps

    config = tiny_config(tmp_path, "eyepacs", {"finetune.strategy": strategy,
                                               "optim.name": "sgd"})
    transform = run.image_transform(config, augment=False)
    built = run.build_steps(config, tasks.multiclass(["a", "b", "c"]),
                            mesh=steps.make_mesh(jax.devices()[:1]), train_transform=transform,
                            eval_transform=transform, steps_per_epoch=5, total_steps=10,
                            weights=None, abstract=True)
    widths = (3, 32, 64, 128, 256)
    backbone = sum(9 * c_in * c_out + 2 * c_out for c_in, c_out in zip(widths, widths[1:]))
    head = 256 * 3 + 3
    record = run.parameter_record(built.state, built.optimizer.plan, 10)
    assert record["total"] == backbone + head
    assert record["trainable"] == (backbone + head if trained == "all" else head)
    assert "parameters train" in run.describe_parameters(record)
