"""Building a run from its config: data, model, optimizer and compiled steps.

Every command that trains or scores a model builds it here (`jaxtl.training.loop`, `jaxtl.commands.evaluate`,
`jaxtl.commands.features`, `jaxtl.commands.bench`), so they all see the same data, transforms and variables.
`build_steps` is the part that needs no data and, with `abstract=True`, no device: the model,
optimizer, initial state (shapes only) and steps that `build` trains with, and that
`jaxtl.engine.projection` compiles for a TPU topology.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np
import optax
from flax import traverse_util

from jaxtl import models, optim
from jaxtl.config import validation as configuration
from jaxtl.core import tasks
from jaxtl.core.errors import ConfigError
from jaxtl.core.tasks import Task
from jaxtl.data import device_augment, loading, pipeline
from jaxtl.data.cache import cache_root
from jaxtl.data.records import DatasetSplits
from jaxtl.data.registry import DatasetSpec
from jaxtl.data.transforms import ImageTransform
from jaxtl.engine import steps, transfer
from jaxtl.models import lora


@dataclasses.dataclass
class Run:
    """Everything built from the config that the loop needs."""

    config: ml_collections.ConfigDict
    spec: DatasetSpec  # the dataset's, resolved once for the run
    splits: DatasetSplits
    mesh: jax.sharding.Mesh
    layout: pipeline.Layout
    model: Any
    plan: optim.FinetunePlan  # which backbone stages train from which step
    train_step: Any  # step number -> the compiled train step (frozen stages differ by phase)
    eval_step: Any
    schedule: Any
    stream: pipeline.TrainStream
    eval_transform: ImageTransform
    total_steps: int
    loss_weights: dict[str, float] | None  # per class or label (train.*_weights); None: all 1
    # trainable parameters, all parameters, optimizer-state bytes (`parameter_record`)
    parameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    base: dict[str, str] | None = None  # a LoRA run's frozen base (transfer.base_reference)
    # id(records) -> (records, feed): the evaluation feeds, kept between evaluations
    feeds: dict[int, tuple[Any, pipeline.EvalFeed]] = dataclasses.field(default_factory=dict)
    helpers: dict[str, Any] = dataclasses.field(default_factory=dict)  # see `compiled`

    def eval_feed(self, records: Any) -> pipeline.EvalFeed:
        """The evaluation batches of `records` (a split of this run), whose Grain workers stay
        from one evaluation to the next."""
        if id(records) not in self.feeds:
            self.feeds[id(records)] = (records, pipeline.EvalFeed(
                records, self.eval_transform, global_batch=self.config.eval.batch_size,
                layout=self.layout, num_workers=self.config.data.num_workers,
                prefetch=self.config.data.prefetch_batches,
                label_shape=self.splits.task.label_shape,
                skip_bad_images=self.config.data.bad_images == "skip"))
        return self.feeds[id(records)][1]

    def compiled(self, name: str, build: Callable[[], Any]) -> Any:
        """What `build` makes (a compiled helper of this run: segmentation's tile predictor),
        built on first use and kept with the run."""
        if name not in self.helpers:
            self.helpers[name] = build()
        return self.helpers[name]

    def close_feeds(self) -> None:
        for _, feed in self.feeds.values():
            feed.close()
        self.feeds.clear()


def image_transform(config: ml_collections.ConfigDict, augment: bool,
                    spec: DatasetSpec | None = None) -> ImageTransform:
    """The per-image transform, decoding with the dataset's decoder (`DatasetSpec.decoder`);
    `augment`: the training augmentations of `data.augment`, else none (evaluation).
    `spec`: the dataset's, when the caller has it."""
    return ImageTransform(resolution=config.data.resolution, channels=config.data.channels,
                          mean=tuple(config.data.mean), std=tuple(config.data.std),
                          augment=configuration.parse_augment(config.data.augment) if augment
                          else (),
                          crop_scale_min=config.data.crop_scale_min,
                          rotate_degrees=config.data.rotate_degrees,
                          decoder=loading.decoder(config, spec))


def build_model(config: ml_collections.ConfigDict, task: Task, mesh: jax.sharding.Mesh, *,
                abstract: bool = False) -> tuple[Any, dict[str, Any]]:
    """The configured model for `task` and its starting variables: random from `train.seed`,
    with `model.init`'s backbone when it is set (head left random). A segmentation task gets
    a UNet on the backbone (jaxtl/models/unet.py), whose decoder is its head. `abstract`: the
    variables' shapes only (`model.init` is not read: it gives the same shapes)."""
    if task.kind == tasks.SEGMENTATION:
        model = models.create_unet(config.model.arch, num_outputs=task.num_outputs,
                                   decoder_channels=config.seg.decoder_channels,
                                   dtype=config.model.dtype)
    else:
        model = models.create_model(config.model.arch, num_outputs=task.num_outputs,
                                    head=config.model.head, dropout=config.model.dropout,
                                    drop_path=config.model.drop_path, dtype=config.model.dtype,
                                    head_init_std=config.model.head_init_std,
                                    remat=config.model.remat)
    image_shape = (config.data.resolution, config.data.resolution, config.data.channels)
    variables = steps.init_variables(model, seed=config.train.seed, image_shape=image_shape,
                                     mesh=mesh, abstract=abstract)
    if config.model.init and not abstract:
        variables = transfer.load_into(config.model.init, variables,
                                       in_channels=config.data.channels,
                                       cache_dir=cache_root(config))
    if config.train.adapter == "lora":
        return with_lora(config, model, variables, image_shape, mesh)
    return model, variables


def with_lora(config: ml_collections.ConfigDict, model: Any, variables: dict[str, Any],
              image_shape: tuple[int, int, int],
              mesh: jax.sharding.Mesh) -> tuple[lora.LoraModel, dict[str, Any]]:
    """`model` with LoRA adapters (`config.lora`) on `variables`: A random from `train.seed`,
    B zeros (abstract variables: the adapters' shapes)."""
    settings = lora.LoraSettings.from_config(config.lora)
    images = jax.ShapeDtypeStruct((1, *image_shape), np.float32)
    try:
        targets = lora.find_targets(model, variables, images, settings.targets)
    except lora.TargetError as error:
        raise ConfigError(f"{error} ({config.model.arch})") from None
    key = jax.random.fold_in(jax.random.PRNGKey(config.train.seed), 1)  # not init's keys
    add = functools.partial(lora.init_adapters, key, targets=targets, rank=settings.rank)
    if steps.is_abstract(variables):
        sharding = steps.replicated(mesh)
        params = jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype,
                                                                sharding=sharding),
                              jax.eval_shape(add, variables["params"]))
    else:
        params = add(variables["params"])
    return lora.LoraModel(model, settings), {**variables, "params": params}


def parameter_record(state: steps.TrainState, plan: optim.FinetunePlan,
                     total_steps: int) -> dict[str, int]:
    """The parameters a run trains (a LoRA run's adapters and head; else those of every stage
    the fine-tuning plan trains at some step, and the head) and holds, and the bytes of its
    optimizer state."""
    params = traverse_util.flatten_dict(dict(state.params))
    never = optim.Frozen(tuple(stage for stage, start in zip(plan.stages, plan.start_steps,
                                                              strict=True)
                               if start is None or start >= total_steps))
    trains = (lora.is_trainable if lora.has_adapters(state.params)
              else lambda path: not never.contains(path))
    return {"trainable": sum(int(np.prod(np.shape(value))) for path, value in params.items()
                             if trains(path)),
            "total": sum(int(np.prod(np.shape(value))) for value in params.values()),
            "optimizer_state_bytes": sum(int(np.prod(leaf.shape)) * np.dtype(leaf.dtype).itemsize
                                         for leaf in jax.tree.leaves(state.opt_state))}


def describe_parameters(record: dict[str, int]) -> str:
    """The log line of `parameter_record`."""
    return (f"{record['trainable']:,} of {record['total']:,} parameters train "
            f"({record['trainable'] / max(record['total'], 1):.2%}); optimizer state "
            f"{record['optimizer_state_bytes'] / 1e6:.2f} MB")


def loss_weights(config: ml_collections.ConfigDict,
                 splits: DatasetSplits) -> dict[str, float] | None:
    """The training loss's class weights (softmax) or positive weights (multi-label), from the
    training labels as `train.class_weights` / `train.positive_weights` say."""
    task = splits.task
    used, unused = (("positive_weights", "class_weights") if task.multilabel
                    else ("class_weights", "positive_weights"))
    if config.train[unused] != "none":
        raise ConfigError(
            f"config.train.{unused} is {config.train[unused]!r}, but {splits.name}'s task is "
            f"{'multi-label' if task.multilabel else 'single-label (softmax)'}: use "
            f"config.train.{used} instead")
    if config.train[used] == "none":
        return None
    weights = tasks.balanced_weights(task, np.asarray([r.label for r in splits.train]))
    return {name: float(w) for name, w in zip(task.names, weights)}


def check_accumulation(config: ml_collections.ConfigDict, devices: int) -> None:
    """Refuses a batch that does not split into train.accumulation_steps equal micro-batches on
    every device (the other rules of the fine-tuning options are checked with the config,
    jaxtl.config.validation)."""
    k = config.train.accumulation_steps
    if config.data.batch_size % (k * devices):
        raise ConfigError(f"config.data.batch_size={config.data.batch_size} must be a multiple "
                          f"of train.accumulation_steps x devices = {k} x {devices}: each "
                          f"device runs its share of the batch in {k} equal micro-batches")


@dataclasses.dataclass(frozen=True)
class Steps:
    """A run's model, optimizer, initial state and steps: what needs no data."""

    model: Any
    optimizer: optim.Optimizer
    state: steps.TrainState  # shapes only when built with abstract=True
    train_step: Callable[[int], Any]  # step number -> the jitted train step of its phase
    eval_step: Any


def build_steps(config: ml_collections.ConfigDict, task: Task, *, mesh: jax.sharding.Mesh,
                train_transform: ImageTransform, eval_transform: ImageTransform,
                steps_per_epoch: int, total_steps: int, weights: dict[str, float] | None,
                abstract: bool = False) -> Steps:
    """The model, optimizer, fresh state and jitted steps of a run over `mesh`; `abstract`:
    the state as shapes with the mesh's shardings, nothing computed or placed (the mesh may be
    a TPU topology's devices that are not here)."""
    check_accumulation(config, mesh.size)
    optimizer = optim.make_optimizer(config, steps_per_epoch, total_steps)
    model, variables = build_model(config, task, mesh, abstract=abstract)
    if config.train.adapter == "lora":  # only the adapters and the head get optimizer state
        optimizer = dataclasses.replace(optimizer, tx=optax.multi_transform(
            {lora.TRAINABLE: optimizer.tx, lora.FROZEN: optax.set_to_zero()}, lora.labels))
    state = steps.new_state(optimizer.tx, variables, seed=config.train.seed, mesh=mesh,
                            ema=config.train.ema_decay > 0)
    augment = device_augment.from_config(config, train_transform.wire_dtype)
    compile_step = functools.cache(lambda frozen: steps.make_train_step(
        model, optimizer.tx, mesh, task=task,
        label_smoothing=config.train.label_smoothing, frozen=frozen,
        loss_weights=tuple(weights.values()) if weights else None,
        normalisation=train_transform.normalisation,
        max_rotation=train_transform.max_rotation, augment=augment,
        accumulation_steps=config.train.accumulation_steps,
        ema_decay=config.train.ema_decay, batch_norm_scope=config.model.batch_norm_scope))
    return Steps(model=model, optimizer=optimizer, state=state,
                 train_step=lambda step: compile_step(optimizer.plan.frozen_at(step)),
                 eval_step=steps.make_eval_step(model, mesh, eval_transform.normalisation))


def build(config: ml_collections.ConfigDict,
          spec: DatasetSpec | None = None) -> tuple[Run, steps.TrainState]:
    """Data, model, optimizer and compiled steps; returns the run and a fresh state. `spec`:
    the dataset's as validation resolved it (`jaxtl.config.validation.validate`); without it,
    `config.dataset` is looked up here."""
    spec = loading.spec_of(config, spec)
    splits = loading.load_splits(config, spec)
    weights = loss_weights(config, splits)
    mesh = steps.make_mesh()
    layout = pipeline.Layout.from_mesh(mesh)
    train_transform, eval_transform = (image_transform(config, augment=True, spec=spec),
                                       image_transform(config, augment=False, spec=spec))
    # A segmentation dataset trains on random crops of its tiles, several per tile and epoch.
    dense = spec.segmentation
    stream = pipeline.train_stream(
        list(splits.train) * (dense.crops_per_tile(config) if dense else 1), train_transform,
        global_batch=config.data.batch_size, epochs=config.train.epochs,
        seed=config.train.seed, layout=layout, num_workers=config.data.num_workers,
        prefetch=config.data.prefetch_batches,
        skip_bad_images=config.data.bad_images == "skip",
        example=dense.crop(config) if dense else None)
    total_steps = stream.steps_per_epoch * config.train.epochs
    built = build_steps(config, splits.task, mesh=mesh, train_transform=train_transform,
                        eval_transform=eval_transform, steps_per_epoch=stream.steps_per_epoch,
                        total_steps=total_steps, weights=weights)
    run = Run(config=config, spec=spec, splits=splits, mesh=mesh, layout=layout,
              model=built.model, plan=built.optimizer.plan, train_step=built.train_step,
              eval_step=built.eval_step, schedule=built.optimizer.schedule, stream=stream,
              eval_transform=eval_transform, total_steps=total_steps, loss_weights=weights,
              parameters=parameter_record(built.state, built.optimizer.plan, total_steps),
              base=(transfer.base_reference(config.model.init)
                    if config.train.adapter == "lora" else None))
    return run, built.state
