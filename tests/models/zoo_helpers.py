"""Helpers shared by the model-zoo tests."""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from random_weights import leaf_name, random_variables  # noqa: F401 (the zoo tests' helpers)

from jaxtl.models import create_model, min_input_size

# Compile time dominates these tests on a 2-core CPU: skip XLA's backend optimisation (and, for
# the deepest models, its fusion emitters too; about 3x faster to compile, same numbers).
fast_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
fast_jit_no_fusion = functools.partial(
    jax.jit, compiler_options={"xla_backend_optimization_level": 0,
                               "xla_cpu_use_fusion_emitters": False})


def op_dtypes(jaxpr, names=("conv_general_dilated", "dot_general")) -> set:
    """Output dtypes of the named primitives, searching nested jaxprs too."""
    found = set()
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in names:
            found.add(eqn.outvars[0].aval.dtype)
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    found |= op_dtypes(inner, names)
    return found


def images(n: int = 2, size: int | tuple[int, int] = 32, channels: int = 3,
           seed: int = 0) -> jnp.ndarray:
    """Normal NHWC float32 images; NumPy, not jax.random: compiling threefry for every new
    shape costs seconds on a CPU."""
    h, w = (size, size) if isinstance(size, int) else size
    return jnp.asarray(np.random.default_rng(seed).normal(size=(n, h, w, channels)), jnp.float32)


def zoo_size(arch: str) -> int:
    """The input side the zoo tests use: the architecture's smallest, at least 32 px (under
    32 px most backbones' last stages see 1x1 maps)."""
    return max(min_input_size(arch), 32)


@dataclasses.dataclass(frozen=True)
class TracedInit:
    jaxpr: jax.extend.core.Jaxpr
    logits: jax.ShapeDtypeStruct
    variables: dict  # of ShapeDtypeStructs
    features: dict  # the model's named features (jaxtl/models/taps.py), as ShapeDtypeStructs
    # the paths (below `backbone`) of the backbone's modules, in the order their `__call__` ran
    backbone_calls: tuple[tuple[str, ...], ...]


@functools.cache
def traced_init(arch: str, dtype: str = "float32", channels: int = 3) -> TracedInit:
    """`init_with_output` of `arch` with timm's ImageNet head (1000 outputs), computing in
    `dtype`, on two `channels`-channel images of `zoo_size`; traced (never compiled) once per
    session and setting, as several tests read its program, variables, compute dtypes and
    module calls (tracing every architecture costs about a second each on CI)."""
    model = create_model(arch, num_outputs=1000, dtype=dtype)
    x = jax.ShapeDtypeStruct((2, zoo_size(arch), zoo_size(arch), channels), jnp.float32)
    calls: list[tuple[str, ...]] = []

    def record(next_fun, args, kwargs, context):
        path = context.module.path
        if context.method_name == "__call__" and len(path) > 1 and path[0] == "backbone":
            calls.append(path[1:])
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        traced, ((logits, features), variables) = jax.make_jaxpr(
            lambda x: model.init_with_output(jax.random.key(0), x, train=False),
            return_shape=True)(x)
    return TracedInit(traced.jaxpr, logits, variables, features, tuple(calls))


def init_shapes(model, size: int | tuple[int, int] = 32, channels: int = 3):
    """The model's variables as shapes and dtypes, without computing them."""
    h, w = (size, size) if isinstance(size, int) else size
    x = jnp.zeros((1, h, w, channels), jnp.float32)
    return jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))


def timm_key_to_jaxtl(key: str, shape: tuple[int, ...],
                      classifier: str) -> tuple[str, str, tuple[int, ...]]:
    """The converter's rule for "nested" names, written out independently of it: (collection,
    '/'-path, shape) of the timm state-dict entry `key` with torch shape `shape`.

    A numeric part (an nn.Sequential index) joins the part before it with "_", every other part
    nests; conv weights OIHW -> HWIO; norm weight -> scale; BN running_* -> batch_stats; NF gain
    (O, 1, 1, 1) -> (O,); the classifier (Linear or 1x1 conv) -> the head's Dense `fc`.
    """
    *modules, leaf = key.split(".")
    if ".".join(modules) == classifier:
        if leaf == "weight":
            return "params", "head/fc/kernel", (shape[1], shape[0])
        return "params", f"head/fc/{leaf}", shape
    parts: list[str] = []
    for m in modules:
        parts = parts[:-1] + [f"{parts[-1]}_{m}"] if m.isdigit() else parts + [m]
    path = "backbone/" + "/".join(parts)
    if leaf.startswith("running_"):
        return "batch_stats", f"{path}/{leaf.removeprefix('running_')}", shape
    if leaf == "weight" and len(shape) == 4:
        return "params", f"{path}/kernel", (shape[2], shape[3], shape[1], shape[0])
    if leaf == "gain":
        return "params", f"{path}/gain", (shape[0],)
    return "params", f"{path}/{'scale' if leaf == 'weight' else leaf}", shape


def parameter_count(variables) -> int:
    """How many values the model's parameters hold (timm: sum of `p.numel()`)."""
    return sum(leaf.size for leaf in jax.tree.leaves(variables["params"]))


def shapes_by_name(tree) -> dict[str, tuple[int, ...]]:
    return {leaf_name(p): tuple(x.shape) for p, x in jax.tree_util.tree_leaves_with_path(tree)}


def assert_timm_keys_map(variables, timm_keys: dict[str, tuple[int, ...]], classifier: str) -> None:
    """Each timm state-dict entry (name: torch shape) is, by `timm_key_to_jaxtl`, a variable of
    the model with the shape the rule gives."""
    found = {collection: shapes_by_name(tree) for collection, tree in variables.items()}
    for key, shape in timm_keys.items():
        collection, path, jaxtl_shape = timm_key_to_jaxtl(key, shape, classifier)
        assert found.get(collection, {}).get(path) == jaxtl_shape, (key, path)


def train_mode_gradients(model, variables, x, labels, jit=fast_jit_no_fusion):
    """One training-mode forward and backward pass with softmax cross-entropy:
    (gradients of the params, (logits, updated collections)). Compiled once per model (equal
    Linen modules hash alike) and input shape, so tests of one model share the compilation."""
    step = _gradient_step(model, "batch_stats" in variables, jit)
    return step(variables["params"], variables.get("batch_stats", {}), x, labels)


@functools.cache
def _gradient_step(model, with_batch_stats: bool, jit):
    @jit
    def step(params, batch_stats, x, labels):
        def loss(p):
            if with_batch_stats:
                (logits, _), state = model.apply({"params": p, "batch_stats": batch_stats}, x,
                                                 train=True, mutable=["batch_stats"])
            else:  # weight-standardised or normaliser-free: no batch statistics
                (logits, _), state = model.apply({"params": p}, x, train=True), {}
            log_probs = jax.nn.log_softmax(logits)
            nll = -jnp.mean(jnp.take_along_axis(log_probs, labels[:, None], axis=1))
            return nll, (logits, state)

        return jax.grad(loss, has_aux=True)(params)

    return step


def assert_finite_logits_and_every_gradient_nonzero(grads, logits, shape) -> None:
    assert logits.shape == shape and logits.dtype == jnp.float32
    assert np.isfinite(np.asarray(logits)).all()
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        g = np.asarray(g)
        assert np.isfinite(g).all() and np.any(g), leaf_name(path)


def logits_and_state(output):
    """`((logits, features), state)` of a mutable `apply` -> `(logits, state)`."""
    (logits, _), state = output
    return logits, state
