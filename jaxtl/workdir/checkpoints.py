"""Orbax checkpoints of a run: the latest few for resuming, and the best one by validation.

`<workdir>/checkpoints/<step>/` holds `state` (params, batch_stats, optimizer state, step, RNG,
and with train.ema_decay > 0 the parameters' moving average `ema_params`), `data` (the Grain
iterator's position, one file per host) and `meta` (epoch, metrics).
`<workdir>/best/<step>/` holds `state` and `meta` of the checkpoint with the best validation
metric; it is what the final evaluation, `jaxtl.commands.evaluate`, `jaxtl.explain`,
`jaxtl.commands.features` and later transfer runs use. Its `state` is the model's variables
only (params, batch_stats): nothing resumes from it, so it needs no optimizer state (the
optimizer's moments are as large as the params, or twice as large for Adam). With a moving
average, its `params` are the weights eval.select names (the training loop passes the state
with the average as its params for `ema`), and `meta["val"]` is their score
(`meta["val_raw"]` / `meta["val_ema"]`: the other weights').

A LoRA run (`train.adapter=lora`, jaxtl/models/lora.py) saves in both only what it trains: the
adapters and the head (`lora.trainable`), the BatchNorm statistics and the optimizer state of
those; the frozen backbone is `model.init`'s, named in each checkpoint's `meta` with a content
hash (`base`), so that resuming or loading the run with another base is refused.

A finished run keeps `best/` and removes `checkpoints/` (`remove_latest`) unless
`train.keep_last_checkpoint` is set: the latest checkpoints exist to resume an unfinished run.
"""

from __future__ import annotations

import pathlib
import shutil
import uuid
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp
from flax import traverse_util

from jaxtl.core.errors import TransferError
from jaxtl.models import lora
from jaxtl.workdir.files import BEST_DIR, LATEST_DIR

# What the best checkpoint keeps of the train state: the variables a model is applied with.
MODEL_VARIABLES = ("params", "batch_stats")
BASE_KEY = "base"  # meta: the frozen base of a LoRA run ({"init": path, "sha256": ...})


def model_variables(state: Any) -> dict[str, Any]:
    """The train state's variables that the best checkpoint keeps."""
    return {name: getattr(state, name) for name in MODEL_VARIABLES}


def saved_part(state: Any) -> Any:
    """What a checkpoint holds of `state`: all of it, or a LoRA run's trained parameters."""
    if not lora.has_adapters(state.params):
        return state
    return state.replace(params=lora.trainable(state.params))


def with_frozen(restored: Any, state: Any) -> Any:
    """`restored` (a `saved_part`) with the frozen parameters of `state` put back."""
    if not lora.has_adapters(state.params):
        return restored
    params = traverse_util.flatten_dict(dict(state.params))
    params |= traverse_util.flatten_dict(dict(restored.params))
    return restored.replace(params=traverse_util.unflatten_dict(params))


def check_base(meta: dict[str, Any], base: dict[str, Any] | None, where: pathlib.Path) -> None:
    """Refuses a checkpoint trained on another frozen base than `base` (the one loaded now)."""
    saved = meta.get(BASE_KEY)
    if saved is None or base is None or saved.get("sha256") == base.get("sha256"):
        return
    raise TransferError(
        f"{where} was trained with LoRA on model.init={saved.get('init')} (sha256 "
        f"{str(saved.get('sha256'))[:12]}...), but those weights have changed (now "
        f"{str(base.get('sha256'))[:12]}...): restore the original base weights, or start a "
        f"new run")


def barriers(manager: str) -> ocp.options.MultiprocessingOptions:
    """Names a manager's barriers between hosts apart from the other manager's: Orbax names a
    save's barriers by its step, and the latest and the best checkpoint of an epoch share
    it, so the two managers' asynchronous saves of one step met at the same barrier and the
    hosts waited for each other forever."""
    return ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=manager)


class LoopDecidesWhenToSave(ocp.CheckpointManager):
    """An Orbax manager that leaves JAX's preemption sync point to the training loop.

    The sync point protocol (`multihost_utils.reached_preemption_sync_point`) reports each
    host's last step number when a SIGTERM arrives and agrees on the largest plus one, so it
    needs one caller whose step only rises: `jaxtl.core.preemption.StopRequest`, at every
    step. Orbax's own manager calls it too, from `save` and from the thread that finishes an
    asynchronous save with the step saved earlier; a host's reported step could then fall
    behind the step it had reached, the hosts stopped at different steps and the first to
    save waited for the other forever.
    """

    def reached_preemption(self, step: int) -> bool:
        del step
        return False


class RunCheckpoints:
    def __init__(self, workdir: str | pathlib.Path, *, keep: int, best_metric: str,
                 base: dict[str, Any] | None = None):
        """`base`: the frozen base a LoRA run adapts (its `model.init` and content hash),
        recorded in every checkpoint's meta and checked on restoring."""
        workdir = pathlib.Path(workdir).resolve()
        self.workdir = workdir
        self.best_metric = best_metric
        self.base = base
        self.latest = LoopDecidesWhenToSave(
            workdir / LATEST_DIR, item_names=("state", "data", "meta"),
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, create=True, multiprocessing_options=barriers(LATEST_DIR)))
        # Handlers named up front: restore_best reads which variables `state` holds first.
        self.best = LoopDecidesWhenToSave(
            workdir / BEST_DIR, item_handlers={"state": ocp.StandardCheckpointHandler(),
                                               "meta": ocp.JsonCheckpointHandler()},
            options=ocp.CheckpointManagerOptions(
                max_to_keep=1, create=True, multiprocessing_options=barriers(BEST_DIR),
                best_fn=lambda metrics: metrics[best_metric],
                best_mode="max", keep_checkpoints_without_metrics=False))

    def latest_step(self) -> int | None:
        return self.latest.latest_step()

    def save_latest(self, step: int, state: Any, data_iterator: grain.DatasetIterator,
                    meta: dict[str, Any]) -> None:
        self.latest.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(saved_part(state)),
            data=grain.checkpoint.CheckpointSave(data_iterator),
            meta=ocp.args.JsonSave(self._with_base(meta))))

    def _with_base(self, meta: dict[str, Any]) -> dict[str, Any]:
        return meta if self.base is None else {**meta, BASE_KEY: self.base}

    def restore_latest(self, state: Any,
                       data_iterator: grain.DatasetIterator) -> tuple[Any, dict[str, Any]]:
        """Restores into `data_iterator` in place; returns the state and the metadata.
        `state`: the run's fresh state, or its shapes (`abstract_like`); a LoRA run's must
        be the state itself, whose frozen base the checkpoint does not hold."""
        step = self.latest.latest_step()
        restored = self.latest.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_like(saved_part(state))),
            data=grain.checkpoint.CheckpointRestore(data_iterator),
            meta=ocp.args.JsonRestore()))
        check_base(restored.meta, self.base, self.workdir)
        return with_frozen(restored.state, state), restored.meta

    def best_value(self) -> float | None:
        self.best.wait_until_finished()
        step = self.best.best_step()
        if step is None:
            return None
        meta = self.best.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
        return self.score(meta)

    def score(self, meta: dict[str, Any]) -> float:
        """The validation metric; an undefined one (e.g. AUROC of a one-class split) is -inf."""
        value = meta["val"][self.best_metric]
        return float("-inf") if value is None else float(value)

    def save_if_best(self, step: int, state: Any, meta: dict[str, Any]) -> bool:
        """Keeps `state` as the best checkpoint when its validation metric is higher (the
        first evaluation is always kept)."""
        previous = self.best_value()
        if previous is not None and not self.score(meta) > previous:
            return False
        self.best.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(model_variables(saved_part(state))),
            meta=ocp.args.JsonSave(self._with_base(meta))),
                       metrics={self.best_metric: self.score(meta)})
        return True

    def restore_best(self, state: Any) -> tuple[Any, dict[str, Any]]:
        """`state` with the best checkpoint's params and batch_stats, and its metadata. The
        best checkpoint of a run from an older jaxtl, which holds the whole train state,
        restores too."""
        step = self.best.best_step()
        saved = self.best.item_metadata(step)["state"].keys()
        abstract = abstract_like({name: getattr(saved_part(state), name) for name in saved})
        restored = self.best.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
        check_base(restored.meta, self.base, self.workdir)
        variables = {name: restored.state[name] for name in MODEL_VARIABLES}
        return with_frozen(state.replace(**variables), state), restored.meta

    def wait(self) -> None:
        self.latest.wait_until_finished()
        self.best.wait_until_finished()

    def close(self) -> None:
        self.latest.close()
        self.best.close()


def remove_latest(workdir: str | pathlib.Path) -> int:
    """Removes a run's latest checkpoints (`checkpoints/`), which only resuming needs; returns
    the bytes freed. The folder is renamed aside first, so a process killed while deleting
    leaves no partial checkpoint that a resume would try to read."""
    folder = pathlib.Path(workdir) / LATEST_DIR
    if not folder.is_dir():
        return 0
    size = folder_bytes(folder)
    doomed = folder.with_name(f".{LATEST_DIR}.removed-{uuid.uuid4().hex}")
    folder.rename(doomed)
    shutil.rmtree(doomed, ignore_errors=True)
    return size


def folder_bytes(folder: pathlib.Path) -> int:
    """The bytes of the files under `folder`."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def abstract_like(tree: Any) -> Any:
    """ShapeDtypeStructs with shardings, the form Orbax restores into."""
    return jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, tree)
