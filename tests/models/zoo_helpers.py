"""Helpers shared by the model-zoo tests."""

from __future__ import annotations

import functools

import jax

# Compile time dominates these tests on a 2-core CPU: skip XLA's backend optimisation (and, for
# the deepest models, its fusion emitters too; about 3x faster to compile, same numbers).
fast_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
fast_jit_no_fusion = functools.partial(
    jax.jit, compiler_options={"xla_backend_optimization_level": 0,
                               "xla_cpu_use_fusion_emitters": False})


def leaf_name(path) -> str:
    """'backbone/conv1/kernel' for a pytree key path."""
    return jax.tree_util.keystr(path, simple=True, separator="/")


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
