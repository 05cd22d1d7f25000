"""Early stopping: end training once the validation metric has stopped improving.

"Until convergence" in practice: train at most `train.epochs`, evaluating every
`train.eval_every_epochs`; an evaluation improves on the best so far when its `eval.best_metric`
exceeds it by more than `train.early_stopping_min_delta`; training stops at the first evaluation
that comes `train.early_stopping_patience` or more epochs after the last improvement (as Keras'
EarlyStopping, counted in epochs). Patience 0 never stops. Higher metric values are better; an
undefined value (None, e.g. AUROC of a split with one class) never improves.

The state is plain JSON, saved in every checkpoint's metadata, so a resumed run stops where the
uninterrupted one would have.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any


@dataclasses.dataclass
class EarlyStopping:
    patience: int  # epochs without improvement that end training; 0: never
    min_delta: float
    best: float = -math.inf  # the value of the last improvement
    best_epoch: int | None = None  # the epoch of the last improvement
    stopped_epoch: int | None = None  # set when training was stopped early

    @property
    def stopped(self) -> bool:
        return self.stopped_epoch is not None

    def update(self, epoch: int, value: float | None) -> bool:
        """Records the evaluation of `epoch`; True when training should stop after it."""
        value = -math.inf if value is None else float(value)
        if self.best_epoch is None or value - self.min_delta > self.best:
            self.best, self.best_epoch = value, epoch
            return False
        if self.patience and epoch - self.best_epoch >= self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def state(self) -> dict[str, Any]:
        # JSON has no infinity: None stands for "no defined value yet"
        return {"best": None if math.isinf(self.best) else self.best,
                "best_epoch": self.best_epoch, "stopped_epoch": self.stopped_epoch}

    @classmethod
    def restore(cls, patience: int, min_delta: float, state: dict[str, Any]) -> EarlyStopping:
        best = -math.inf if state["best"] is None else state["best"]
        return cls(patience, min_delta, best, state["best_epoch"], state["stopped_epoch"])
