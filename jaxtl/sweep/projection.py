"""A sweep on a TPU slice, on paper: every run's projected time and the grid's chip-hours.

`python -m jaxtl.sweep ... --plan v5e:2x4` compiles each distinct step of the selected runs
once for the topology (jaxtl.engine.projection: runs that differ only in what does not change
the compiled program, such as the learning rate, the training-set size or the pretraining
source, share it), projects each run's time from its steps' roofline lower bounds, and refuses
the sweep, before any run starts, when a run's steps do not fit in a chip's memory.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import ml_collections

from jaxtl.config.base import COMMON
from jaxtl.config.validation import dataset_spec
from jaxtl.core import chips
from jaxtl.core.errors import UserError
from jaxtl.core.tasks import task_record
from jaxtl.data import loading
from jaxtl.engine import projection
from jaxtl.sweep import plan as planning

# The common settings that change a run's compiled train or eval step (shapes, dtypes, the
# optimizer's state and update, frozen stages); the others (learning rate and schedule,
# epochs, seeds, training-set size, where the data and the pretrained weights are) only
# change values or how many steps run.
STEP_KEYS = ("dataset", "data.task", "data.channels", "data.resolution", "data.batch_size",
             "eval.batch_size", "model.arch", "model.head", "model.dropout",
             "model.dtype", "optim.name", "optim.nesterov", "optim.weight_decay_mask",
             "optim.clip_grad_norm", "finetune.strategy", "finetune.freeze_stages",
             "train.label_smoothing", "train.class_weights", "train.positive_weights",
             "seg.decoder_channels", "seg.ce_weight", "seg.dice_weight",
             # the device augmentations, the fine-tuning options for large models and LoRA
             "data.randaugment", "data.random_erasing", "train.mixup_alpha",
             "train.cutmix_alpha", "model.remat", "train.accumulation_steps", "train.ema_decay",
             "train.adapter", "lora.rank", "lora.targets", "model.batch_norm_scope")


# data settings that change the pixels or how they are fed, not which records a split holds
NOT_SPLIT_KEYS = ("data.batch_size", "data.resolution", "data.augment", "data.crop_scale_min",
                  "data.rotate_degrees", "data.mean", "data.std", "data.num_workers",
                  "data.prefetch_batches", "data.bad_images", "data.prepared",
                  "data.randaugment", "data.random_erasing")
DEMO_DATA_KEYS = ("demo.seed", "demo.num_patients", "demo.image_size")  # what the demo data is


def _own_sections(effective: dict[str, Any]) -> dict[str, Any]:
    """The dataset's own settings (sections COMMON does not declare)."""
    return {key: value for key, value in effective.items()
            if "." in key and key.split(".")[0] not in COMMON}


def data_key(run: planning.PlannedRun) -> str:
    """What decides the run's splits: its data settings, the dataset's own and the demo's."""
    chosen = {key: value for key, value in run.effective.items()
              if key in ("dataset", *DEMO_DATA_KEYS)
              or (key.startswith("data.") and key not in NOT_SPLIT_KEYS)
              } | _own_sections(run.effective)
    return json.dumps(chosen, sort_keys=True, default=list)


def step_key(run: planning.PlannedRun, task: dict[str, Any]) -> str:
    """What decides the run's compiled steps; augmentations by whether there are any (the
    warp samples crops, flips and rotations alike) and the largest rotation (on TPUs it sets
    how far the warp's shears reach, jaxtl.data.shear_warp)."""
    chosen = {key: run.effective.get(key) for key in STEP_KEYS}
    augment = run.effective.get("data.augment")
    chosen["augmented"] = augment != "none"
    chosen["max_rotation"] = (run.effective.get("data.rotate_degrees")
                              if "rotate" in str(augment).split(",") else 0.0)
    return json.dumps([chosen, _own_sections(run.effective), task], sort_keys=True,
                      default=list)


@dataclasses.dataclass(frozen=True)
class RunProjection:
    name: str
    figures: dict[str, Any]  # projection.Projection.summary()
    train_steps: int
    eval_batches: int  # evaluation batches over the whole run (validation, final scoring)

    @property
    def hours(self) -> float:
        """Wall-clock hours on the slice, at least."""
        return (self.train_steps * self.figures["train_step_seconds"]
                + self.eval_batches * self.figures["eval_step_seconds"]) / 3600

    @property
    def chip_hours(self) -> float:
        return self.hours * self.figures["chips"]


def _evaluations(config: ml_collections.ConfigDict) -> int:
    every, epochs = config.train.eval_every_epochs, config.train.epochs
    return epochs // every + (epochs % every != 0)


def project_runs(runs: Sequence[planning.PlannedRun], topology_name: str,
                 out: Callable[[str], None] = print) -> list[RunProjection]:
    """Each run's projection on the topology, compiling each distinct step once."""
    topology = chips.parse_topology(topology_name)
    devices = projection.topology_devices(topology)
    loader = planning.ConfigLoader()
    splits_of: dict[str, Any] = {}
    compiled: dict[str, dict[str, Any]] = {}
    projected = []
    for run in runs:
        config = planning.run_config(run, loader)
        spec = dataset_spec(config)
        key = data_key(run)
        if key not in splits_of:
            splits_of[key] = loading.sampled_splits(config, loading.data_root(config, spec),
                                                    spec)
        splits = splits_of[key]
        signature = step_key(run, task_record(splits.task))
        if signature not in compiled:
            out(f"[plan] compiling {run.name}'s steps for {topology.name} "
                f"({len(compiled) + 1} distinct so far)")
            compiled[signature] = projection.project(
                config, topology, spec=spec, task=splits.task, devices=devices).summary()
        train = len(splits.train) * (spec.segmentation.crops_per_tile(config)
                                     if spec.segmentation else 1)
        eval_batches = (_evaluations(config) + 1) * math.ceil(
            len(splits.val) / config.eval.batch_size) + math.ceil(
            len(splits.test) / config.eval.batch_size)
        projected.append(RunProjection(
            run.name, compiled[signature],
            train_steps=train // config.data.batch_size * config.train.epochs,
            eval_batches=eval_batches))
    return projected


def describe(projected: Sequence[RunProjection]) -> list[str]:
    lines = []
    for run in projected:
        figures = run.figures
        lines.append(
            f"  {figures['images_per_chip']:5d}/chip  "
            f"{figures['train_memory_bytes'] / 1e9:6.2f} of {figures['hbm_bytes'] / 1e9:.1f} GB"
            f"  {figures['train_step_seconds'] * 1e3:8.2f} ms/step  {run.train_steps:8d} steps"
            f"  {run.hours:8.3f} h  {run.chip_hours:9.2f} chip-h"
            f"{'' if figures['fits'] else '  DOES NOT FIT'}  {run.name}")
    total = sum(run.chip_hours for run in projected)
    hours = sum(run.hours for run in projected)
    if projected:
        first = projected[0].figures
        lines.append(f"[plan] {len(projected)} runs on {first['topology']} "
                     f"({first['chips']} chips), one after another: at least {hours:.2f} h, "
                     f"{total:.2f} chip-hours (roofline lower bounds of XLA:TPU's counts, "
                     f"at most train.epochs epochs; docs/tpu.md)")
    return lines


def refuse_misfits(projected: Sequence[RunProjection]) -> None:
    """A UserError naming the runs whose steps do not fit in a chip's memory."""
    misfits = [run for run in projected if not run.figures["fits"]]
    if misfits:
        first = misfits[0].figures
        raise UserError(
            f"{len(misfits)} run(s) do not fit in the {first['hbm_bytes'] / 1e9:.1f} GB of a "
            f"{first['chip']} chip: {', '.join(run.name for run in misfits[:5])}"
            f"{' ...' if len(misfits) > 5 else ''}; lower their data.batch_size (python -m "
            f"jaxtl.commands.plan --fit finds the largest that fits) or leave them out with "
            f"--only")
