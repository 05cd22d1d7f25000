"""Evaluators: how a run's model is scored, chosen by the kind of its task.

An evaluator scores a split every epoch (`score_split`, on val, by the training loop) and the
best checkpoint once (`final_results`: val and test metrics with intervals and what the task
keeps beside them, by the training loop and `jaxtl.commands.evaluate`). Evaluation is exact:
every example once, across hosts (`per_example.outputs`; segmentation: every tile whole on
every host). A new kind of task adds a module with its evaluator and one line to `EVALUATORS`.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from jaxtl.core.tasks import SegmentationTask, Task
from jaxtl.data.records import Record
from jaxtl.engine.build import Run
from jaxtl.engine.steps import TrainState
from jaxtl.evaluators.classification import ClassificationEvaluator
from jaxtl.evaluators.segmentation import SegmentationEvaluator


@runtime_checkable
class Evaluator(Protocol):
    kinds: tuple[str, ...]  # the task kinds it scores

    def score_split(self, run: Run, state: TrainState, records: Sequence[Record], *,
                    intervals: bool = False) -> dict[str, Any]:
        """The task's metrics on a split (`records`, every one scored once); with
        `intervals`, bootstrap confidence intervals."""
        ...

    def final_results(self, run: Run, state: TrainState,
                      workdir: pathlib.Path) -> dict[str, Any]:
        """results.json's `val`, `test` (None: an empty split), `operating_points` and
        `label_policies` of the checkpoint in `state`; the first host saves the predictions
        in `workdir`."""
        ...


EVALUATORS: tuple[Evaluator, ...] = (
    ClassificationEvaluator(),
    SegmentationEvaluator(),
)


def for_task(task: Task | SegmentationTask) -> Evaluator:
    """The evaluator of `task`'s kind."""
    for evaluator in EVALUATORS:
        if task.kind in evaluator.kinds:
            return evaluator
    known = ", ".join(kind for evaluator in EVALUATORS for kind in evaluator.kinds)
    raise ValueError(f"no evaluator scores tasks of kind {task.kind!r} (evaluators exist for "
                     f"{known}): add a module with one to jaxtl/evaluators/ and a line to "
                     f"EVALUATORS")
