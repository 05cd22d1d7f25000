"""The jit-compiled train and eval steps, sharded over a Mesh of all devices.

The batch is sharded on the mesh's 'data' axis and the train state is replicated; under
`jax.jit` the loss, gradients and BatchNorm statistics are computed over the global batch, so
one device and N devices compute the same numbers (`model.batch_norm_scope=device`: BatchNorm
statistics over each device's shard instead, `per_device`). The train step donates the old state.
Images arrive in their wire dtype (uint8 for 8-bit data) and are normalised inside the steps
(`normalisation`, jaxtl.data.transforms.Normalisation), so a quarter of float32's bytes cross
to the device. A training batch with a `warp` holds canvases that the step first samples
through their warps (crop, flip and rotation: jaxtl.data.transforms.warp_batch). The train
step's device augmentations (RandAugment, random erasing, mixup/cutmix:
jaxtl.data.device_augment) follow the warp, drawn from the step's own key; evaluation never
sees them.

Two options of the train step (issue 27, fine-tuning large models): gradient accumulation
(`accumulation_steps` k: the batch runs as k micro-batches under `jax.lax.scan`, their summed
losses and counts added up, so that the update is the whole batch's; BatchNorm statistics are
those of each micro-batch in turn) and an exponential moving average of the parameters
(`ema_decay`: the state is an `EmaTrainState`, whose `ema_params` follow each update).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxtl.core.tasks import Mix, Task
from jaxtl.data.device_augment import DeviceAugment, augment_key
from jaxtl.data.transforms import warp_batch
from jaxtl.optim.freezing import NOTHING_FROZEN, Frozen

Batch = dict[str, jax.Array]
Normalise = Callable[[jax.Array], jax.Array]  # wire pixels -> float32 model input


def warped(batch: Batch, max_rotation: float = 180.0) -> jax.Array:
    """The batch's images, sampled through their warps when the batch has warps (rotations up
    to `max_rotation` degrees)."""
    if "warp" not in batch:
        return batch["image"]
    return warp_batch(batch["image"], batch["warp"], max_rotation)


def normalised(batch: Batch, normalisation: Normalise | None,
               max_rotation: float = 180.0) -> jax.Array:
    """The batch's images as the model takes them: warped when the batch has warps, then
    normalised (as they are without a normalisation)."""
    images = warped(batch, max_rotation)
    return images if normalisation is None else normalisation(images)


def augmented(batch: Batch, normalisation: Normalise | None, augment: DeviceAugment | None,
              step_key: jax.Array, max_rotation: float = 180.0) -> tuple[jax.Array, Mix | None]:
    """The train step's input: `normalised`, with the device augmentations drawn from the
    step's key (its dropout key `step_key`); and the Mix the loss takes (None: no mixup)."""
    if augment is None:
        return normalised(batch, normalisation, max_rotation), None
    return augment(warped(batch, max_rotation), batch["label"], batch.get("valid"),
                   normalisation, augment_key(step_key))


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    rng: jax.Array  # raw uint32 key data: dropout keys are fold_in(rng, step)


@flax.struct.dataclass
class EmaTrainState(TrainState):
    """A train state with an exponential moving average of the parameters (train.ema_decay >
    0); without one the state stays a `TrainState`, so its checkpoints are as before."""

    ema_params: Any


def has_ema(state: TrainState) -> bool:
    return isinstance(state, EmaTrainState)


def ema_weights(state: EmaTrainState) -> TrainState:
    """The state with the moving average as its parameters (and the raw model's BatchNorm
    statistics): what evaluation applies to score the EMA model."""
    return TrainState(step=state.step, params=state.ema_params, batch_stats=state.batch_stats,
                      opt_state=state.opt_state, rng=state.rng)


def updated_ema(ema: Any, params: Any, decay: float) -> Any:
    """One step of the moving average: decay * ema + (1 - decay) * params."""
    return jax.tree.map(lambda average, new: decay * average + (1.0 - decay) * new, ema, params)


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh on the 'data' axis over `devices` (None: every device of this process's
    backend; a TPU topology's devices for a deviceless compile, jaxtl.engine.projection)."""
    return Mesh(np.asarray(jax.devices() if devices is None else devices), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def is_abstract(tree: Any) -> bool:
    """Whether `tree` holds shapes (jax.ShapeDtypeStruct) rather than arrays."""
    return any(isinstance(leaf, jax.ShapeDtypeStruct) for leaf in jax.tree.leaves(tree))


def _replicated_result(function: Callable[..., Any], mesh: Mesh, *args: Any,
                       abstract: bool) -> Any:
    """`function(*args)` replicated on the mesh: computed under jit or, when `abstract`, only
    its shapes and dtypes (`jax.eval_shape`), each carrying the replicated sharding, so that a
    step compiles for a mesh of devices that are not here (a TPU topology)."""
    sharding = replicated(mesh)
    if not abstract:
        return jax.jit(function, out_shardings=sharding)(*args)
    return jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype,
                                                          sharding=sharding),
                        jax.eval_shape(function, *args))


def init_variables(model: nn.Module, *, seed: int, image_shape: tuple[int, int, int],
                   mesh: Mesh, abstract: bool = False) -> dict[str, Any]:
    """Random initial variables `{'params', 'batch_stats'}` from `seed`, replicated;
    `abstract`: their shapes only (nothing computed or placed on a device)."""

    def init() -> dict[str, Any]:
        params_key, dropout_key, _ = jax.random.split(jax.random.PRNGKey(seed), 3)
        dummy = jnp.zeros((1, *image_shape), jnp.float32)
        variables = model.init({"params": params_key, "dropout": dropout_key}, dummy,
                               train=False)
        return {"params": variables["params"],
                "batch_stats": variables.get("batch_stats", {})}

    return _replicated_result(init, mesh, abstract=abstract)


def new_state(tx: optax.GradientTransformation, variables: dict[str, Any], *, seed: int,
              mesh: Mesh, ema: bool = False) -> TrainState:
    """Step 0 of training from `variables`: a fresh optimizer state, the RNG from `seed`;
    `ema`: an `EmaTrainState` whose average starts at the parameters. Abstract `variables`
    (shapes, as `init_variables(..., abstract=True)` gives) make an abstract state: the shapes,
    dtypes and shardings the train step is compiled for."""
    abstract = is_abstract(variables)

    def fresh(params: Any) -> dict[str, Any]:
        rest = {"step": jnp.zeros((), jnp.int32), "opt_state": tx.init(params),
                # the third key, beside init's two
                "rng": jax.random.split(jax.random.PRNGKey(seed), 3)[2]}
        if ema:  # a copy: the train step donates the state, params and average apart
            rest["ema_params"] = jax.tree.map(jnp.copy, params)
        return rest

    if not abstract:
        variables = jax.device_put(variables, replicated(mesh))
    rest = _replicated_result(fresh, mesh, variables["params"], abstract=abstract)
    state = TrainState(step=rest["step"], params=variables["params"],
                       batch_stats=variables.get("batch_stats", {}),
                       opt_state=rest["opt_state"], rng=rest["rng"])
    if not ema:
        return state
    return EmaTrainState(**{field.name: getattr(state, field.name)
                            for field in dataclasses.fields(TrainState)},
                         ema_params=rest["ema_params"])


def init_state(model: nn.Module, tx: optax.GradientTransformation, *, seed: int,
               image_shape: tuple[int, int, int], mesh: Mesh,
               abstract: bool = False) -> TrainState:
    """Random initial variables and a fresh optimizer state, replicated on every device
    (`abstract`: their shapes only)."""
    return new_state(tx, init_variables(model, seed=seed, image_shape=image_shape, mesh=mesh,
                                        abstract=abstract),
                     seed=seed, mesh=mesh)


def make_train_step(model: nn.Module, tx: optax.GradientTransformation, mesh: Mesh, *,
                    task: Task, label_smoothing: float = 0.0, frozen: Frozen = NOTHING_FROZEN,
                    loss_weights: tuple[float, ...] | None = None,
                    normalisation: Normalise | None = None, max_rotation: float = 180.0,
                    augment: DeviceAugment | None = None, accumulation_steps: int = 1,
                    ema_decay: float = 0.0, batch_norm_scope: str = "global",
                    ) -> Callable[[TrainState, Batch], tuple[TrainState, dict]]:
    """One optimizer step on the task's loss: the mean over the counted (image, label)
    entries of the global batch (see jaxtl.core.tasks), weighted by `loss_weights` (per class or
    per label's positives; None: unweighted). `frozen`: backbone stages that get no
    gradient and run BatchNorm and dropout in inference mode (jaxtl.optim.freezing); the
    optimizer keeps their parameters. A batch may hold `valid` (False: a skipped image's
    stand-in, left out of loss and accuracy). The metrics say whether the loss and the gradient
    norm were finite (`finite`) and how many images were skipped. `normalisation`: applied to
    the batch's images inside the step (None: they are the model's input already).
    `max_rotation`: the largest rotation of the batch's warps, in degrees
    (`ImageTransform.max_rotation`; it chooses how TPUs warp, see `warp_batch`). `augment`:
    RandAugment, random erasing and mixup/cutmix on the device (jaxtl.data.device_augment;
    None: none), drawn on the whole batch before any split into micro-batches.
    `accumulation_steps` k > 1: the batch runs as k micro-batches, one after the other, with
    the same update (`accumulated_gradients`; classification tasks, a batch a multiple of k x
    devices). `ema_decay` > 0: the state is an `EmaTrainState` whose average follows every
    update (`updated_ema`). `batch_norm_scope` (model.batch_norm_scope): "global", BatchNorm
    statistics over the whole (micro-)batch; "device", over each device's shard of it
    (`per_device`)."""
    def forward(params: Any, batch_stats: Any, images: jax.Array, dropout_key: jax.Array):
        """(logits, new batch_stats) of the model in training mode on model-ready `images`."""
        with frozen.inference_mode():
            (logits, _), updates = model.apply(
                {"params": frozen.stop_gradient(params), "batch_stats": batch_stats},
                images, train=True, rngs={"dropout": dropout_key}, mutable=["batch_stats"])
        return logits, updates.get("batch_stats", {})

    apply = forward if batch_norm_scope == "global" else per_device(forward, mesh)

    def whole_batch_gradients(state: TrainState, batch: Batch, mix: Mix | None,
                              dropout_key: jax.Array):
        def loss_fn(params):
            logits, batch_stats = apply(params, state.batch_stats, batch["image"], dropout_key)
            loss = task.mean_loss(logits, batch["label"], label_smoothing, loss_weights,
                                  batch.get("valid"), mix)
            return loss, (logits, batch_stats)

        (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params)
        return loss, grads, logits, batch_stats

    def accumulated_gradients(state: TrainState, batch: Batch, mix: Mix | None,
                              dropout_key: jax.Array):
        if mix is not None:  # a mixed pair's partner rides along with each micro-batch
            batch = {**batch, MIX_LABELS: mix.labels, MIX_VALID: mix.valid}

        def summed_loss_fn(params, batch_stats, micro, key):
            logits, batch_stats = apply(params, batch_stats, micro["image"], key)
            micro_mix = (None if mix is None
                         else Mix(mix.lam, micro[MIX_LABELS], micro[MIX_VALID]))
            total, count = task.summed_loss(logits, micro["label"], label_smoothing,
                                            loss_weights, micro.get("valid"), micro_mix)
            return total, (count, logits, batch_stats)

        def micro_step(carry, inputs):
            grads, total, count, batch_stats = carry
            index, micro = inputs
            (micro_total, (micro_count, logits, batch_stats)), micro_grads = jax.value_and_grad(
                summed_loss_fn, has_aux=True)(state.params, batch_stats, micro,
                                              jax.random.fold_in(dropout_key, index))
            grads = jax.tree.map(jnp.add, grads, micro_grads)
            return (grads, total + micro_total, count + micro_count, batch_stats), logits

        zero = jnp.zeros((), jnp.float32)
        start = (jax.tree.map(jnp.zeros_like, state.params), zero, zero, state.batch_stats)
        micro = micro_batches(batch, accumulation_steps, mesh)
        (grads, total, count, batch_stats), logits = jax.lax.scan(
            micro_step, start, (jnp.arange(accumulation_steps), micro))
        scale = 1.0 / jnp.maximum(count, 1e-12)
        grads = jax.tree.map(lambda grad: grad * scale, grads)
        return total * scale, grads, whole_batch(logits), batch_stats

    gradients = whole_batch_gradients if accumulation_steps == 1 else accumulated_gradients

    def step(state: TrainState, batch: Batch) -> tuple[TrainState, dict]:
        dropout_key = jax.random.fold_in(state.rng, state.step)
        images, mix = augmented(batch, normalisation, augment, dropout_key, max_rotation)
        inputs = {key: value for key, value in batch.items() if key != "warp"} | {
            "image": images}
        loss, grads, logits, batch_stats = gradients(state, inputs, mix, dropout_key)
        new_state = apply_gradients(tx, state, grads, batch_stats, ema_decay)
        return new_state, train_metrics(task, loss, grads, logits, batch)

    data = NamedSharding(mesh, PartitionSpec("data"))
    return jax.jit(step, in_shardings=(replicated(mesh), data),
                   out_shardings=(replicated(mesh), replicated(mesh)), donate_argnums=0)


def per_device(forward: Callable[..., tuple[jax.Array, Any]], mesh: Mesh
               ) -> Callable[..., tuple[jax.Array, Any]]:
    """`forward(params, batch_stats, images, dropout_key)` on each device's shard of the
    images (a shard_map over 'data'): BatchNorm normalises with each shard's own statistics, as
    the flax ImageNet example's pmap and big_vision do, with no all-reduce per layer. The
    logits stay sharded, the loss and gradients are the whole batch's (the gradient of the
    replicated parameters is summed over the devices by shard_map's transpose); the updated
    running averages are averaged over the devices (one all-reduce, flax's `sync_batch_stats`)
    so that the state stays replicated. Each device draws its own dropout."""
    replicated_spec, data = PartitionSpec(), PartitionSpec("data")

    def local(params: Any, batch_stats: Any, images: jax.Array, dropout_key: jax.Array):
        key = jax.random.fold_in(dropout_key, jax.lax.axis_index("data"))
        logits, batch_stats = forward(params, batch_stats, images, key)
        return logits, jax.lax.pmean(batch_stats, "data")

    return jax.shard_map(local, mesh=mesh,
                         in_specs=(replicated_spec, replicated_spec, data, replicated_spec),
                         out_specs=(data, replicated_spec))


# the partner labels and validity of a mixed batch, split into micro-batches beside the batch
MIX_LABELS, MIX_VALID = "mix_labels", "mix_valid"


def micro_batches(batch: Batch, k: int, mesh: Mesh) -> Batch:
    """The batch as k micro-batches (k, B / k, ...): micro-batch j holds rows j, j + k, j + 2k,
    ..., so that each device's rows split into k micro-batches of its own (no data moves
    between devices when the batch is sharded on 'data' in B / devices consecutive rows)."""
    sharding = NamedSharding(mesh, PartitionSpec(None, "data"))

    def split(x: jax.Array) -> jax.Array:
        micro = jnp.swapaxes(x.reshape(x.shape[0] // k, k, *x.shape[1:]), 0, 1)
        return jax.lax.with_sharding_constraint(micro, sharding)

    return jax.tree.map(split, batch)


def whole_batch(micro: jax.Array) -> jax.Array:
    """The inverse of `micro_batches` for one array: (k, B / k, ...) -> (B, ...)."""
    return jnp.swapaxes(micro, 0, 1).reshape(-1, *micro.shape[2:])


def apply_gradients(tx: optax.GradientTransformation, state: TrainState, grads: Any,
                    batch_stats: Any, ema_decay: float) -> TrainState:
    """The state after one optimizer update with `grads` (and the moving average after it,
    when `ema_decay` > 0)."""
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                              opt_state=opt_state)
    if ema_decay:
        if not has_ema(state):
            raise ValueError("ema_decay > 0 needs an EmaTrainState (new_state(..., ema=True))")
        new_state = new_state.replace(ema_params=updated_ema(state.ema_params, params,
                                                             ema_decay))
    return new_state


def train_metrics(task: Task, loss: jax.Array, grads: Any, logits: jax.Array,
                  batch: Batch) -> dict[str, jax.Array]:
    """The train step's metrics: loss, gradient norm, whether both are finite, skipped images
    and (one class per image) the accuracy over the valid images."""
    grad_norm = optax.tree.norm(grads)
    metrics = {"loss": loss, "grad_norm": grad_norm,
               "finite": jnp.isfinite(loss) & jnp.isfinite(grad_norm)}
    valid = batch.get("valid", jnp.ones(batch["image"].shape[0], bool))
    metrics["skipped_images"] = jnp.sum(~valid)
    if not task.multilabel and logits.ndim == 2:  # one class per image (not per pixel)
        correct = (jnp.argmax(logits, -1) == batch["label"]) & valid
        metrics["accuracy"] = jnp.sum(correct) / jnp.maximum(jnp.sum(valid), 1)
    return metrics


def make_eval_step(model: nn.Module, mesh: Mesh, normalisation: Normalise | None = None,
                   ) -> Callable[[TrainState, Batch], Batch]:
    """Logits of a batch, returned (with labels, indices, mask and valid) to every host."""

    def step(state: TrainState, batch: Batch) -> Batch:
        logits, _ = model.apply({"params": state.params, "batch_stats": state.batch_stats},
                                normalised(batch, normalisation), train=False)
        return {"logits": logits.astype(jnp.float32), "label": batch["label"],
                "index": batch["index"], "mask": batch["mask"], "valid": batch["valid"]}

    data = NamedSharding(mesh, PartitionSpec("data"))
    return jax.jit(step, in_shardings=(replicated(mesh), data), out_shardings=replicated(mesh))
