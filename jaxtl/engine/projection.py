"""A run's train and eval steps compiled for a TPU topology that is not here, and what the
compiler says of them: memory per chip, FLOPs, bytes accessed, collectives, and a roofline
lower bound on the step time.

The steps are `jaxtl.engine.build.build_steps`'s, the ones a run trains with, over a mesh of
the topology's devices (libtpu compiles for them without the chips: the `tpu` extra), with
abstract inputs: the state's shapes (`jax.eval_shape`) and the batch's, with the run's
shardings. Nothing is read or computed on a device. The step time is
max(FLOPs / peak FLOP/s, bytes accessed / HBM bandwidth) per chip from the compiler's own
counts: a lower bound, not a measurement (XLA's `optimal_seconds` is negative for whole
training steps). docs/tpu.md says how to read the figures.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from jaxtl.config import validation as configuration
from jaxtl.core import chips, platforms
from jaxtl.core.chips import Topology
from jaxtl.core.errors import UserError
from jaxtl.core.tasks import Task
from jaxtl.data import loading
from jaxtl.data.registry import DatasetSpec
from jaxtl.data.transforms import ImageTransform
from jaxtl.engine import build, steps

# one all-reduce instruction of HLO text: synchronous, or the start of an asynchronous one
_ALL_REDUCE = re.compile(r"=\s*[^=]*?\ball-reduce(?:-start)?\(")
# an instruction with an array result: `%name = f32[...]{layout} op(`
_DEFINITION = re.compile(r"%([\w.\-]+) = (\w+)\[")
# a convolution or matmul instruction: its result type and its operands
_CONTRACTION = re.compile(r"%[\w.\-]+ = (\w+)\[[^=]*?\b(?:convolution|dot)\(([^)]*)\)")


def topology_devices(topology: Topology) -> list[Any]:
    """The devices of `topology` as libtpu describes them (no chip needed)."""
    if not platforms.libtpu_installed():
        raise UserError(f"compiling for TPU topology {topology.name} needs libtpu: "
                        f"pip install 'jaxtl[tpu]' (JAX's TPU build) on this machine")
    if not platforms.tpu_attached():  # compiling only: another process may hold libtpu too
        os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    from jax.experimental import topologies

    try:
        description = topologies.get_topology_desc(platform="tpu",
                                                   topology_name=topology.name)
    except Exception as error:  # noqa: BLE001 - libtpu's refusal, said in one line
        raise UserError(f"TPU topology {topology.name}: libtpu refuses it "
                        f"({str(error).strip().splitlines()[0]}); e.g. v5e:2x4, v4:2x2x1, "
                        f"v5p:2x2x1, v6e:2x2") from None
    devices = list(description.devices)
    if devices[0].device_kind != topology.chip.device_kind:
        raise UserError(f"TPU topology {topology.name}: libtpu describes {devices[0].device_kind}"
                        f" devices, not {topology.chip.device_kind}")
    return devices


def devices_per_chip(devices: list[Any]) -> int:
    """TensorCores libtpu gives as separate devices on one chip (2 on v4: no megacore)."""
    return len(devices) // len({tuple(device.coords) for device in devices})


def per_device_bytes(tree: Any) -> int:
    """Bytes one device holds of an abstract tree (each leaf's shard, by its sharding)."""
    return sum(math.prod(leaf.sharding.shard_shape(leaf.shape)) * np.dtype(leaf.dtype).itemsize
               for leaf in jax.tree.leaves(tree))


def all_reduces(hlo: str) -> int:
    return len(_ALL_REDUCE.findall(hlo))


def float32_contractions(hlo: str) -> list[str]:
    """The convolutions and matmuls of compiled HLO text whose result or an operand is
    float32 (operands are named, not typed, in compiled HLO: their definitions say)."""
    dtypes = dict(_DEFINITION.findall(hlo))
    found = []
    for line in hlo.splitlines():
        match = _CONTRACTION.search(line)
        if match is None:
            continue
        operands = re.findall(r"%([\w.\-]+)", match.group(2))
        if "f32" in (match.group(1), *(dtypes.get(name) for name in operands)):
            found.append(line.strip())
    return found


@dataclasses.dataclass(frozen=True)
class StepFigures:
    """What the compiler says of one step on one chip (all its devices)."""

    images: int  # per chip per step
    flops: float
    bytes_accessed: float
    argument_bytes: int
    output_bytes: int
    alias_bytes: int
    temp_bytes: int
    code_bytes: int
    all_reduces: int  # per step, in the HLO each device runs
    compile_seconds: float
    hlo: str = dataclasses.field(repr=False, default="")

    @property
    def memory_bytes(self) -> int:
        """Peak memory: arguments, outputs that do not reuse an argument (the donated state),
        temporaries and the program itself."""
        return (self.argument_bytes + self.output_bytes - self.alias_bytes + self.temp_bytes
                + self.code_bytes)


def compile_figures(jitted: Any, args: tuple[Any, ...], per_chip: int,
                    images: int) -> StepFigures:
    """Compiles `jitted` for abstract `args` and reads cost and memory per chip
    (`per_chip`: devices per chip; the compiler's figures are per device)."""
    cached = jax.config.jax_enable_compilation_cache
    # A program compiled without its devices cannot be loaded back from JAX's persistent
    # cache (it warns and compiles again), so it is not written there.
    jax.config.update("jax_enable_compilation_cache", False)
    try:
        start = time.perf_counter()
        compiled = jitted.lower(*args).compile()
        seconds = time.perf_counter() - start
    finally:
        jax.config.update("jax_enable_compilation_cache", cached)
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    memory = compiled.memory_analysis()
    hlo = compiled.as_text()
    return StepFigures(images=images, flops=per_chip * float(cost["flops"]),
                       bytes_accessed=per_chip * float(cost["bytes accessed"]),
                       argument_bytes=per_chip * memory.argument_size_in_bytes,
                       output_bytes=per_chip * memory.output_size_in_bytes,
                       alias_bytes=per_chip * memory.alias_size_in_bytes,
                       temp_bytes=per_chip * memory.temp_size_in_bytes,
                       code_bytes=per_chip * memory.generated_code_size_in_bytes,
                       all_reduces=all_reduces(hlo), compile_seconds=seconds, hlo=hlo)


def roofline_seconds(figures: StepFigures, chip: chips.ChipKind) -> float:
    """The step's lower bound on `chip`: compute or memory traffic, whichever is slower."""
    return max(figures.flops / chip.peak_bf16_flops,
               figures.bytes_accessed / chip.hbm_bytes_per_second)


def abstract_batch(mesh: jax.sharding.Mesh, global_batch: int, transform: ImageTransform,
                   task: Task, *, train: bool, segmentation: bool) -> dict[str, Any]:
    """The shapes of a batch as jaxtl.data.pipeline delivers it (TrainExample, a segmentation
    dataset's crops, EvalExample), sharded on the mesh's 'data' axis."""
    side, channels = transform.resolution, transform.channels
    if segmentation and train:  # normalised float32 crops and their pixel classes
        fields = {"image": ((side, side, channels), jnp.float32),
                  "label": ((side, side), jnp.int32)}
    else:
        fields = {"image": ((side, side, channels), jnp.dtype(transform.wire_dtype)),
                  "label": (tuple(task.label_shape), jnp.int32)}
    fields["valid"] = ((), jnp.bool_)
    if train and transform.warps_on_device and not segmentation:
        fields["warp"] = ((2, 3), jnp.float32)
    if not train:
        fields |= {"index": ((), jnp.int32), "mask": ((), jnp.bool_)}
    sharding = NamedSharding(mesh, PartitionSpec("data"))
    return {key: jax.ShapeDtypeStruct((global_batch, *shape), dtype, sharding=sharding)
            for key, (shape, dtype) in fields.items()}


@dataclasses.dataclass(frozen=True)
class Projection:
    """A run's steps compiled for a topology: figures per chip."""

    topology: Topology
    batch_size: int  # global
    parameter_bytes: int  # per chip (with the BatchNorm statistics)
    optimizer_bytes: int
    train: StepFigures
    eval: StepFigures

    @property
    def images_per_chip(self) -> int:
        return self.train.images

    @property
    def step_seconds(self) -> float:
        return roofline_seconds(self.train, self.topology.chip)

    @property
    def eval_step_seconds(self) -> float:
        return roofline_seconds(self.eval, self.topology.chip)

    @property
    def fits(self) -> bool:
        hbm = self.topology.chip.hbm_bytes
        return max(self.train.memory_bytes, self.eval.memory_bytes) <= hbm

    def summary(self) -> dict[str, Any]:
        """The figures as plain numbers (the plan's --json, the sweep's plan)."""
        chip, train = self.topology.chip, self.train
        seconds = self.step_seconds
        other = train.memory_bytes - self.parameter_bytes - self.optimizer_bytes
        return {
            "topology": self.topology.name, "chip": chip.name, "chips": self.topology.chips,
            "batch_size": self.batch_size, "images_per_chip": train.images,
            "hbm_bytes": chip.hbm_bytes, "parameter_bytes": self.parameter_bytes,
            "optimizer_state_bytes": self.optimizer_bytes,
            "activation_and_temporary_bytes": other,
            "train_memory_bytes": train.memory_bytes,
            "eval_memory_bytes": self.eval.memory_bytes, "fits": self.fits,
            "train_flops_per_image": train.flops / train.images,
            "train_bytes_accessed_per_step": train.bytes_accessed,
            "train_step_seconds": seconds,
            "bound": ("compute" if train.flops / chip.peak_bf16_flops
                      >= train.bytes_accessed / chip.hbm_bytes_per_second else "memory"),
            "images_per_second_per_chip": train.images / seconds,
            "images_per_second": train.images * self.topology.chips / seconds,
            "mfu": train.flops / chip.peak_bf16_flops / seconds,
            "train_all_reduces": train.all_reduces,
            "eval_step_seconds": self.eval_step_seconds,
            "compile_seconds": train.compile_seconds + self.eval.compile_seconds}


def task_of(config: ml_collections.ConfigDict, spec: DatasetSpec) -> Task:
    """The run's task from its label files (DatasetSpec.load opens no image file; demo data
    are written first where no data is configured, as every program does)."""
    return loading.sampled_splits(config, loading.data_root(config, spec), spec).task


def project(config: ml_collections.ConfigDict, topology: Topology, *,
            spec: DatasetSpec | None = None, task: Task | None = None,
            batch_size: int | None = None, devices: list[Any] | None = None) -> Projection:
    """Compiles the run's first train step (phase of step 0) and its eval step for
    `topology` with the run's shardings; `batch_size`: the global batch instead of
    `data.batch_size` (and `eval.batch_size`), e.g. per chip x chips. `devices`: the
    topology's, when the caller has them already."""
    spec = spec or configuration.dataset_spec(config)
    task = task or task_of(config, spec)
    devices = devices or topology_devices(topology)
    mesh = steps.make_mesh(devices)
    per_chip = devices_per_chip(devices)
    train_batch = batch_size or config.data.batch_size
    eval_batch = batch_size or config.eval.batch_size
    for what, value in (("the batch", train_batch), ("the evaluation batch", eval_batch)):
        if value % len(devices):
            raise UserError(f"{what} ({value}) must be a multiple of the {len(devices)} "
                            f"devices of {topology.name}")
    train_transform = build.image_transform(config, augment=True, spec=spec)
    eval_transform = build.image_transform(config, augment=False, spec=spec)
    weights = ({name: 1.0 for name in task.names}  # the values do not change the program
               if config.train.class_weights != "none" or config.train.positive_weights
               != "none" else None)
    # The schedule's length only changes constants of the program, not what it computes.
    built = build.build_steps(config, task, mesh=mesh, train_transform=train_transform,
                              eval_transform=eval_transform, steps_per_epoch=1000,
                              total_steps=1000 * config.train.epochs, weights=weights,
                              abstract=True)
    segmentation = spec.segmentation is not None
    chips_count = len(devices) // per_chip
    train = compile_figures(
        built.train_step(0), (built.state, abstract_batch(
            mesh, train_batch, train_transform, task, train=True, segmentation=segmentation)),
        per_chip, train_batch // chips_count)
    evaluation = compile_figures(
        built.eval_step, (built.state, abstract_batch(
            mesh, eval_batch, eval_transform, task, train=False, segmentation=segmentation)),
        per_chip, eval_batch // chips_count)
    return Projection(topology=topology, batch_size=train_batch,
                      parameter_bytes=per_chip * per_device_bytes(
                          (built.state.params, built.state.batch_stats)),
                      optimizer_bytes=per_chip * per_device_bytes(built.state.opt_state),
                      train=train, eval=evaluation)


def largest_true(predicate: Callable[[int], bool], limit: int) -> int:
    """The largest n in 1..limit with predicate(n), for a predicate true up to some n and
    false beyond (0 if predicate(1) is false): doubling, then bisection, so about
    2 log2(n) calls."""
    low, high = 0, 1  # predicate(low) holds (0: vacuously); high is not known yet
    while high <= limit and predicate(high):
        low, high = high, high * 2
    high = min(high, limit + 1)
    while high - low > 1:
        middle = (low + high) // 2
        if predicate(middle):
            low = middle
        else:
            high = middle
    return low


def largest_fitting_batch(config: ml_collections.ConfigDict, topology: Topology, *,
                          spec: DatasetSpec | None = None, task: Task | None = None,
                          limit: int = 4096) -> tuple[int, Projection | None]:
    """The largest per-chip batch up to `limit` (a multiple of the devices per chip) whose
    train and eval steps fit in the chip's memory, by a search on compiles; (0, None) if none
    fits."""
    spec = spec or configuration.dataset_spec(config)
    task = task or task_of(config, spec)
    devices = topology_devices(topology)
    per_chip = devices_per_chip(devices)
    projections: dict[int, Projection] = {}

    def fits(units: int) -> bool:  # units: images per device
        projections[units] = project(config, topology, spec=spec, task=task,
                                     devices=devices, batch_size=units * len(devices))
        return projections[units].fits

    best = largest_true(fits, limit // per_chip)
    return best * per_chip, projections.get(best)
