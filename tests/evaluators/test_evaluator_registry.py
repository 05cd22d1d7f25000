"""The task's kind picks its evaluator: one evaluator per kind, an unknown kind a clear error."""

from __future__ import annotations

import dataclasses

import pytest

from jaxtl import evaluators
from jaxtl.core import tasks
from jaxtl.evaluators.classification import ClassificationEvaluator
from jaxtl.evaluators.segmentation import SegmentationEvaluator


@pytest.mark.parametrize("task, expected", [
    (tasks.multiclass(["grade 0", "grade 1", "grade 2"]), ClassificationEvaluator),
    (tasks.multilabel(["edema", "effusion"], three_way=[True, False]), ClassificationEvaluator),
    (tasks.multilabel(["opacity", "edema"], parents=[-1, 0]), ClassificationEvaluator),
    (tasks.segmentation(["background", "nucleus"]), SegmentationEvaluator),
])
def test_the_task_kind_picks_its_evaluator(task, expected):
    assert type(evaluators.for_task(task)) is expected


def test_every_task_kind_has_exactly_one_evaluator():
    kinds = [kind for evaluator in evaluators.EVALUATORS for kind in evaluator.kinds]
    assert sorted(kinds) == sorted([*tasks.KINDS, tasks.SEGMENTATION])
    assert all(isinstance(evaluator, evaluators.Evaluator) for evaluator in evaluators.EVALUATORS)


def test_an_unknown_kind_is_a_clear_error():
    @dataclasses.dataclass(frozen=True)
    class DetectionTask:
        kind: str = "detection"

    with pytest.raises(ValueError) as raised:
        evaluators.for_task(DetectionTask())
    assert str(raised.value) == (
        "no evaluator scores tasks of kind 'detection' (evaluators exist for multiclass, "
        "multilabel, segmentation): add a module with one to jaxtl/evaluators/ and a line to "
        "EVALUATORS")
