"""Fine-tuning strategies: which backbone stages train, from when, and at what learning rate.

`config.finetune.strategy` selects one:
- `full`: everything trains from the first step.
- `linear_probe`: the whole backbone is frozen; only the head trains.
- `freeze_stages`: the first `finetune.freeze_stages` stages (from the input up) are frozen.
- `gradual_unfreeze`: the backbone starts frozen; at each epoch of `finetune.unfreeze_epochs`
  the next stage from the top is unfrozen (the last stage at the first epoch, ...). Stages not
  reached stay frozen.
`finetune.stage_lr_multipliers` (one per stage, from the input up; empty = all 1) scales the
learning rate of each stage (discriminative learning rates), times the layer-wise decay of
`optim.layer_decay` (jaxtl/optim/layer_decay.py); the head always uses the run's peak rate.

A frozen stage is frozen completely: its parameters get no gradient (`Frozen.stop_gradient`)
and no update, and its BatchNorm layers run in inference mode (normalising with their running
statistics, which therefore stay as they are) and its dropout is off
(`Frozen.inference_mode`). Frozen parameters and statistics stay bit-identical.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

import flax.linen as nn
import jax
import ml_collections
from flax import traverse_util

from jaxtl.models import BACKBONE, HEAD, Stage, stages_of
from jaxtl.optim.layer_decay import NO_DECAY, stage_scales
from jaxtl.optim.schedules import epochs_to_steps
from jaxtl.optim.stages import stage_of

STRATEGIES = ("full", "linear_probe", "freeze_stages", "gradual_unfreeze")


def _inside_backbone(path: tuple[str, ...]) -> str | None:
    """'a/b/' for a path ('backbone', 'a', 'b'); None outside the backbone."""
    if len(path) < 2 or path[0] != BACKBONE:
        return None
    return "/".join(path[1:]) + "/"


@dataclasses.dataclass(frozen=True)
class Frozen:
    """The backbone stages frozen during one phase of training (hashable: a phase's key)."""

    stages: tuple[Stage, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.stages)

    def contains(self, path: tuple[str, ...]) -> bool:
        """Whether the variable or module at `path` (from the model's root) is frozen."""
        inside = _inside_backbone(path)
        return inside is not None and any(stage.matches(inside) for stage in self.stages)

    def stop_gradient(self, params: Any) -> Any:
        """`params` with the frozen leaves behind jax.lax.stop_gradient (no backward pass)."""
        if not self.stages:
            return params
        flat = traverse_util.flatten_dict(params)
        return traverse_util.unflatten_dict(
            {path: jax.lax.stop_gradient(value) if self.contains(path) else value
             for path, value in flat.items()})

    @contextlib.contextmanager
    def inference_mode(self) -> Iterator[None]:
        """Within it, BatchNorm and Dropout layers of frozen stages behave as with train=False.

        Used around `model.apply(..., train=True)`: the backbones build their layers with
        `use_running_average=not train` / `deterministic=not train`, so the flag is switched on
        the layer instance for the duration of its call (at trace time; nothing is left behind).
        """
        if not self.stages:
            yield
            return

        def interceptor(next_fun, args, kwargs, context):
            module = context.module
            if context.method_name != "__call__" or not self.contains(module.path):
                return next_fun(*args, **kwargs)
            if isinstance(module, nn.BatchNorm):
                attribute = "use_running_average"
            elif isinstance(module, nn.Dropout):
                attribute = "deterministic"
            else:
                return next_fun(*args, **kwargs)
            before = getattr(module, attribute)
            object.__setattr__(module, attribute, True)  # Linen modules are frozen dataclasses
            try:
                return next_fun(*args, **kwargs)
            finally:
                object.__setattr__(module, attribute, before)

        with nn.intercept_methods(interceptor):
            yield


NOTHING_FROZEN = Frozen()


@dataclasses.dataclass(frozen=True)
class FinetunePlan:
    """Per backbone stage (from the input up): the step from which it trains and its LR factor."""

    stages: tuple[Stage, ...]
    start_steps: tuple[int | None, ...]  # None: frozen for the whole run
    lr_multipliers: tuple[float, ...]

    @classmethod
    def from_config(cls, finetune: ml_collections.ConfigDict, arch: str,
                    steps_per_epoch: int, layer_decay: float = NO_DECAY) -> FinetunePlan:
        """`layer_decay`: optim.layer_decay, multiplied into the stage multipliers."""
        stages = stages_of(arch)
        count = len(stages)
        starts: list[int | None]
        if finetune.strategy == "full":
            starts = [0] * count
        elif finetune.strategy == "linear_probe":
            starts = [None] * count
        elif finetune.strategy == "freeze_stages":
            starts = [None] * finetune.freeze_stages + [0] * (count - finetune.freeze_stages)
        elif finetune.strategy == "gradual_unfreeze":
            starts = [None] * count
            for i, epoch in enumerate(finetune.unfreeze_epochs):
                starts[count - 1 - i] = epochs_to_steps(epoch, steps_per_epoch)
        else:
            raise ValueError(f"unknown fine-tuning strategy {finetune.strategy!r}")
        multipliers = tuple(finetune.stage_lr_multipliers) or (1.0,) * count
        if layer_decay != NO_DECAY:
            multipliers = tuple(m * scale for m, scale in zip(multipliers,
                                                              stage_scales(arch, layer_decay)))
        return cls(stages, tuple(starts), tuple(float(m) for m in multipliers))

    @property
    def uniform(self) -> bool:
        """Every stage trains from the first step at the head's learning rate."""
        return all(s == 0 for s in self.start_steps) and all(m == 1 for m in self.lr_multipliers)

    def frozen_at(self, step: int) -> Frozen:
        """The stages frozen while computing step `step` (counted from 0)."""
        return Frozen(tuple(stage for stage, start in zip(self.stages, self.start_steps)
                            if start is None or step < start))

    def label(self, path: tuple[str, ...]) -> str:
        """'head' or the name of the backbone stage holding the variable at `path`."""
        inside = _inside_backbone(path)
        if inside is None:
            if path[0] != HEAD:
                raise ValueError(f"variable {'/'.join(path)} is neither in the backbone nor in "
                                 f"the head")
            return HEAD
        return stage_of(self.stages, inside)

    def labels(self, params: Any) -> Any:
        """The tree of `params` with each leaf replaced by its label (for multi_transform)."""
        flat = traverse_util.flatten_dict(params)
        return traverse_util.unflatten_dict({path: self.label(path) for path in flat})

    def describe(self, steps_per_epoch: int) -> str:
        parts = []
        for stage, start, multiplier in zip(self.stages, self.start_steps, self.lr_multipliers):
            when = ("frozen" if start is None else "trains" if start == 0 else
                    f"unfrozen at epoch {start / steps_per_epoch:g}")
            parts.append(f"{stage.name} {when}" + (f" (lr x{multiplier:g})"
                                                   if multiplier != 1 else ""))
        return "; ".join(parts)
