"""Starting a run from another run's weights (`--config.model.init=WORKDIR`).

The backbone comes from the checkpoint; the classifier head is re-initialised for the new task.
Every backbone variable of the new model must be found in the checkpoint with the same shape:
anything else fails with the lists of missing, unexpected and mis-shaped names.
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import traverse_util

from jaxtl.checkpoint import BEST_DIR, LATEST_DIR
from jaxtl.errors import TransferError

HEAD = "head"
COLLECTIONS = ("params", "batch_stats")


def checkpoint_state_dir(path: str | pathlib.Path) -> pathlib.Path:
    """The `state` folder of a workdir's best (else latest) checkpoint, or of a step folder."""
    path = pathlib.Path(path).expanduser().resolve()
    if (path / "state").is_dir():
        return path / "state"
    for sub in (BEST_DIR, LATEST_DIR):
        steps = sorted((p for p in (path / sub).glob("*") if p.name.isdigit()),
                       key=lambda p: int(p.name))
        if steps and (steps[-1] / "state").is_dir():
            return steps[-1] / "state"
    raise TransferError(f"model.init={path} is not a jaxtl workdir or checkpoint: expected "
                        f"{BEST_DIR}/<step>/state or {LATEST_DIR}/<step>/state inside it")


def load_variables(path: str | pathlib.Path) -> dict[str, Any]:
    """{'params': ..., 'batch_stats': ...} of a saved run, as NumPy arrays."""
    state = ocp.StandardCheckpointer().restore(checkpoint_state_dir(path))
    return {name: jax.tree_util.tree_map(np.asarray, state[name]) for name in COLLECTIONS
            if name in state}


def load_into(path: str | pathlib.Path, target: dict[str, Any]) -> dict[str, Any]:
    """`target` (freshly initialised variables) with every non-head leaf taken from `path`.

    Leaves from the checkpoint are NumPy arrays; `jaxtl.steps.with_variables` places them.
    """
    source = load_variables(path)
    merged: dict[str, Any] = {}
    missing, unexpected, misshaped = [], [], []
    for collection in COLLECTIONS:
        new = traverse_util.flatten_dict(target.get(collection, {}), sep="/")
        old = traverse_util.flatten_dict(source.get(collection, {}), sep="/")
        out = {}
        for name, value in new.items():
            if name.startswith(HEAD + "/"):
                out[name] = value
            elif name not in old:
                missing.append(f"{collection}/{name}")
            elif old[name].shape != value.shape:
                misshaped.append(f"{collection}/{name} {old[name].shape} -> {value.shape}")
            else:
                out[name] = old[name].astype(value.dtype)
        unexpected += [f"{collection}/{name}" for name in old
                       if name not in new and not name.startswith(HEAD + "/")]
        merged[collection] = traverse_util.unflatten_dict(out, sep="/")
    if missing or unexpected or misshaped:
        parts = [f"{label} ({len(names)}): {', '.join(names[:8])}"
                 + (" ..." if len(names) > 8 else "")
                 for label, names in (("missing", missing), ("unexpected", unexpected),
                                      ("mis-shaped", misshaped)) if names]
        raise TransferError(f"model.init={path} does not fit model: " + "; ".join(parts))
    return merged
