"""A backbone stage's output, as Grad-CAM reads it: found by the stage's pattern, captured and
differentiated with Flax's method interception (`nn.intercept_methods`), so a family needs no
code of its own.

Rule: the output of a stage is the output of the backbone module that returns last in a
forward pass among the modules whose path inside the backbone the stage's pattern matches
(`Stage.matches`, paths joined with '/' and ending in '/'). For a stage made of blocks
(ResNet's `layer4_*`) that is its last block; for a flat family it is the stage's last layer,
before the activation that is applied as a function (DenseNet's `features_norm5`,
EfficientNet's `bn2`, VGG's last conv `features_28`); BiT's final `norm` belongs to its last
stage, so Grad-CAM reads the normalised map that the pooled features come from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxtl.models import Stage

BACKBONE = "backbone"  # the Classifier's attribute holding the backbone (jaxtl/models)


@dataclasses.dataclass(frozen=True)
class StageOutput:
    """Where a stage's output is read: the module's path in the model and its output shape."""

    stage: str
    path: tuple[str, ...]  # e.g. ('backbone', 'layer4_1')
    shape: tuple[int, ...]  # (N, h, w, channels) for the traced input

    @property
    def module(self) -> str:
        """The module's path inside the backbone, e.g. 'layer4_1'."""
        return "/".join(self.path[1:])


def _is_call(context: Any) -> bool:
    return context.method_name == "__call__"


def stage_output(model: nn.Module, variables: Any, image_shape: tuple[int, ...],
                 stage: Stage) -> StageOutput:
    """The module whose output stands for `stage` (see the module doc), found by tracing one
    forward pass on `image_shape` (N, H, W, C) without computing it."""
    returned: list[tuple[tuple[str, ...], tuple[int, ...]]] = []

    def record(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        path = tuple(context.module.path)
        if (_is_call(context) and len(path) > 1 and path[0] == BACKBONE
                and isinstance(out, jax.Array) and stage.matches("/".join(path[1:]) + "/")):
            returned.append((path, tuple(out.shape)))
        return out

    images = jax.ShapeDtypeStruct(image_shape, jnp.float32)
    with nn.intercept_methods(record):
        jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, images)
    if not returned:
        raise ValueError(f"no backbone module matches stage {stage.name!r} ({stage.pattern})")
    path, shape = returned[-1]
    if len(shape) != 4:
        raise ValueError(f"stage {stage.name!r} ends in {'/'.join(path)} with output shape "
                         f"{shape}; Grad-CAM needs a feature map (N, h, w, C)")
    return StageOutput(stage.name, path, shape)


def perturbed_apply(model: nn.Module, variables: Any, images: jax.Array,
                    at: StageOutput) -> Callable[[jax.Array], tuple[jax.Array, jax.Array]]:
    """`delta -> (logits, activation)`: the model in inference mode with `delta` added to the
    output of the module `at`; the activation is that output (delta included). The gradient of
    the logits with respect to `delta` at 0 is their gradient with respect to the activation."""

    def forward(delta: jax.Array) -> tuple[jax.Array, jax.Array]:
        captured: list[jax.Array] = []

        def add_delta(next_fun, args, kwargs, context):
            out = next_fun(*args, **kwargs)
            if _is_call(context) and tuple(context.module.path) == at.path:
                out = out + delta.astype(out.dtype)
                captured.append(out)
            return out

        with nn.intercept_methods(add_delta):
            logits = model.apply(variables, images, train=False)
        if len(captured) != 1:
            raise ValueError(f"{'/'.join(at.path)} ran {len(captured)} times in one forward "
                             f"pass; Grad-CAM needs a module that runs once")
        return logits, captured[0]

    return forward
