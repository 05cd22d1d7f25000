"""LoRA adapters (Hu et al. 2021) on any jaxtl model: `train.adapter=lora`.

A target layer `y = x W + b` (a Dense, or a 1x1 convolution) gets a low-rank branch

    y = x W + b + (alpha / rank) * dropout(x) A B        A: (in, rank), B: (rank, out)

with A drawn as peft/timm draw it (kaiming-uniform with a = sqrt(5): U(-1/sqrt(in), 1/sqrt(in)))
and B zeros, so training starts from the pretrained model's outputs. Without dropout the branch
is the merged kernel `W + (alpha / rank) A B` (`merge`), which is what a run's checkpoint is
loaded and exported as.

Written here rather than taken from a library: jax-lorax (the JAX transform) was last released
in 2024 for jax < 0.5, and flax.nnx.LoRA is for NNX modules while jaxtl's models are Linen.
The adapters ride on the unchanged Linen model: `LoraModel.apply` takes the model's variables
with `lora_a`/`lora_b` beside the target layers' kernels (so fine-tuning stages, weight decay
masks and checkpoint names keep working), removes them, keeps the other backbone parameters
behind `stop_gradient`, and adds each branch at its layer's output through
`flax.linen.intercept_methods`. Which leaves train is `trainable` (the adapters and the head);
`jaxtl.engine.build` gives only those an optimizer (`optax.set_to_zero` for the rest holds no
state: that is where LoRA's optimizer-memory saving comes from).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util

from jaxtl.models.classifier import HEAD

ADAPTERS = ("none", "lora")  # train.adapter
LORA_A, LORA_B = "lora_a", "lora_b"
ADAPTER_LEAVES = (LORA_A, LORA_B)
DEFAULT_TARGETS = ("qkv", "proj")  # a ViT's attention; ("fc1", "fc2"): its MLP too
TRAINABLE, FROZEN = "trainable", "frozen"  # the optimizer's labels

Path = tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class LoraSettings:
    """The `lora` config section."""

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: tuple[str, ...] = DEFAULT_TARGETS

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    @classmethod
    def from_config(cls, lora: Mapping[str, Any]) -> LoraSettings:
        return cls(rank=int(lora["rank"]), alpha=float(lora["alpha"]),
                   dropout=float(lora["dropout"]), targets=tuple(lora["targets"]))


class TargetError(ValueError):
    """`lora.targets` names no layer of the model, or a layer LoRA cannot adapt."""


def _is_adaptable(module: nn.Module) -> str | None:
    """None when `module` is a Dense or a plain 1x1 convolution; else why not."""
    if type(module) is nn.Dense:
        return None
    if type(module) is not nn.Conv:
        return f"a {type(module).__name__}, not a Dense or a 1x1 convolution"
    kernel = (module.kernel_size,) if isinstance(module.kernel_size, int) else module.kernel_size
    if any(k != 1 for k in kernel):
        return f"a {'x'.join(map(str, kernel))} convolution, not 1x1"
    if module.feature_group_count != 1:
        return "a grouped convolution"
    padding = module.padding
    if not (padding in ("VALID", "SAME") or (not isinstance(padding, str) and all(
            tuple(p) == (0, 0) for p in padding))):
        return f"a 1x1 convolution with padding {padding}"
    return None


def find_targets(model: nn.Module, variables: Mapping[str, Any], images: Any,
                 targets: Sequence[str]) -> dict[Path, tuple[int, int]]:
    """{module path: (in features, out features)} of the backbone layers named in `targets`,
    found by tracing the model once (`images`: an array or ShapeDtypeStruct of its input).
    A TargetError when a name matches no layer or a layer that is no Dense / 1x1 conv."""
    seen: dict[Path, nn.Module] = {}
    names: set[str] = set()

    def record(next_fun, args, kwargs, context):
        module = context.module
        if (context.method_name == "__call__" and isinstance(module, (nn.Dense, nn.Conv))
                and module.path and module.path[0] != HEAD):
            names.add(module.name)
            if module.name in targets:
                seen[module.path] = module
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        jax.eval_shape(lambda v, x: model.apply(v, x, train=False), dict(variables), images)
    missing = [name for name in targets if name not in {p[-1] for p in seen}]
    if missing:
        raise TargetError(f"lora.targets names {', '.join(missing)}, which no Dense or "
                          f"convolution of the backbone is called; its layers are named "
                          f"{', '.join(sorted(names)) or '(none)'}")
    flat = traverse_util.flatten_dict(dict(variables["params"]))
    found = {}
    for path, module in seen.items():
        why = _is_adaptable(module)
        if why:
            raise TargetError(f"lora.targets: {'/'.join(path)} is {why}; LoRA adapts Dense "
                              f"layers and 1x1 convolutions")
        kernel = flat[(*path, "kernel")].shape
        found[path] = (int(kernel[-2]), int(kernel[-1]))
    return found


def init_adapters(key: jax.Array, params: Mapping[str, Any],
                  targets: Mapping[Path, tuple[int, int]], rank: int) -> dict[str, Any]:
    """`params` with `lora_a` (in, rank) ~ U(-1/sqrt(in), 1/sqrt(in)) and `lora_b` (rank, out)
    zeros beside each target's kernel (float32)."""
    flat = dict(traverse_util.flatten_dict(dict(params)))
    shapes = tuple(sorted(targets.items()))
    for (path, (_, fan_out)), a in zip(shapes, _draw_a(key, shapes, rank), strict=True):
        flat[(*path, LORA_A)] = a
        flat[(*path, LORA_B)] = jnp.zeros((rank, fan_out), jnp.float32)
    return traverse_util.unflatten_dict(flat)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _draw_a(key: jax.Array, shapes: tuple[tuple[Path, tuple[int, int]], ...],
            rank: int) -> list[jax.Array]:
    """The A of each target (one compiled draw for all), each from its own key (the path's)."""
    drawn = []
    for path, (fan_in, _) in shapes:
        bound = 1.0 / math.sqrt(fan_in)
        subkey = jax.random.fold_in(key, zlib.crc32("/".join(path).encode()))
        drawn.append(jax.random.uniform(subkey, (fan_in, rank), jnp.float32, -bound, bound))
    return drawn


def is_adapter(path: Path) -> bool:
    return path[-1] in ADAPTER_LEAVES


def has_adapters(params: Mapping[str, Any]) -> bool:
    return any(is_adapter(path) for path in traverse_util.flatten_dict(dict(params)))


def is_trainable(path: Path) -> bool:
    """Whether a LoRA run trains the parameter at `path`: an adapter, or the head."""
    return is_adapter(path) or path[0] == HEAD


def labels(params: Mapping[str, Any]) -> Any:
    """`params`' tree with TRAINABLE or FROZEN at each leaf (for optax.multi_transform)."""
    return traverse_util.unflatten_dict({
        path: TRAINABLE if is_trainable(path) else FROZEN
        for path in traverse_util.flatten_dict(dict(params))})


def trainable(params: Mapping[str, Any]) -> dict[str, Any]:
    """The adapters and the head of `params`: what a LoRA run trains and saves."""
    return traverse_util.unflatten_dict({
        path: value for path, value in traverse_util.flatten_dict(dict(params)).items()
        if is_trainable(path)})


def without_adapters(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[Path, tuple]]:
    """(the model's own params, {module path: (A, B)})."""
    own, adapters = {}, {}
    for path, value in traverse_util.flatten_dict(dict(params)).items():
        if is_adapter(path):
            adapters.setdefault(path[:-1], {})[path[-1]] = value
        else:
            own[path] = value
    return (traverse_util.unflatten_dict(own),
            {path: (pair[LORA_A], pair[LORA_B]) for path, pair in adapters.items()})


def merge(params: Mapping[str, Any], scale: float) -> dict[str, Any]:
    """The model's params with each adapted kernel W replaced by W + scale * A B (the same
    dtype as W): the plain model that computes what the adapted one computes without dropout."""
    own, adapters = without_adapters(params)
    flat = traverse_util.flatten_dict(own)
    for path, (a, b) in adapters.items():
        kernel = flat[(*path, "kernel")]
        delta = scale * (jnp.asarray(a, jnp.float32) @ jnp.asarray(b, jnp.float32))
        flat[(*path, "kernel")] = (jnp.asarray(kernel, jnp.float32)
                                   + delta.reshape(kernel.shape)).astype(kernel.dtype)
    return traverse_util.unflatten_dict(flat)


def parameter_count(params: Any) -> int:
    return sum(int(math.prod(jnp.shape(leaf))) for leaf in jax.tree.leaves(params))


def _branch(module: nn.Module, x: jax.Array, a: jax.Array, b: jax.Array, scale: float,
            dropout: float, key: jax.Array | None) -> jax.Array:
    """scale * dropout(x) A B at the layer's output grid, in the layer's dtype."""
    if isinstance(module, nn.Conv):
        strides = module.strides or 1
        strides = (strides,) * (x.ndim - 2) if isinstance(strides, int) else tuple(strides)
        x = x[(slice(None), *(slice(None, None, s) for s in strides))]
    if key is not None and dropout > 0:
        keep = jax.random.bernoulli(key, 1.0 - dropout, x.shape)
        x = jnp.where(keep, x / (1.0 - dropout), 0).astype(x.dtype)
    dtype = module.dtype or x.dtype
    low = jnp.einsum("...i,ir->...r", x.astype(dtype), a.astype(dtype))
    return jnp.einsum("...r,ro->...o", low, (scale * b).astype(dtype))


@dataclasses.dataclass(frozen=True)
class LoraModel:
    """`model` with LoRA adapters: the same `init`/`apply` as a Linen module, whose params
    hold the adapters beside the kernels they adapt (`init_adapters`). Only the adapters and
    the head get gradients; the rest of the backbone is frozen (`stop_gradient`; its BatchNorm
    statistics still update in training, as in peft)."""

    model: nn.Module
    settings: LoraSettings

    def __getattr__(self, name: str) -> Any:  # the wrapped model's attributes
        if name.startswith("__") or name in ("model", "settings"):
            raise AttributeError(name)
        return getattr(self.model, name)

    def init(self, *args: Any, **kwargs: Any) -> Any:
        return self.model.init(*args, **kwargs)

    def apply(self, variables: Mapping[str, Any], *args: Any, rngs: Any = None,
              **kwargs: Any) -> Any:
        own, adapters = without_adapters(variables["params"])
        own = traverse_util.unflatten_dict({
            path: value if is_trainable(path) else jax.lax.stop_gradient(value)
            for path, value in traverse_util.flatten_dict(own).items()})
        train = kwargs.get("train", len(args) > 1 and args[1])
        key = (rngs or {}).get("dropout") if train and self.settings.dropout > 0 else None
        settings = self.settings

        def add_branch(next_fun, call_args, call_kwargs, context):
            out = next_fun(*call_args, **call_kwargs)
            path = context.module.path
            if context.method_name != "__call__" or path not in adapters:
                return out
            a, b = adapters[path]
            subkey = (None if key is None
                      else jax.random.fold_in(key, zlib.crc32("/".join(path).encode())))
            return out + _branch(context.module, call_args[0], a, b, settings.scale,
                                 settings.dropout, subkey).astype(out.dtype)

        with nn.intercept_methods(add_branch):
            return self.model.apply({**variables, "params": own}, *args, rngs=rngs, **kwargs)
