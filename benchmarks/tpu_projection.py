"""jaxtl's train step and the flax examples' ResNet-50 step, compiled for a TPU slice that is not
here (deviceless XLA:TPU compilation), and what the compiler's counts project.

    PYTHONPATH=$PWD:/path/to/libtpu-site python benchmarks/tpu_projection.py \
        --topology v5e:2x4 --arch resnet50 [--reference] [--per_chip 128] [--resolution 224] \
        [--warp on|off] [--out benchmarks/results/tpu_projection.jsonl]

jaxtl's side is the step `python -m jaxtl.main` trains with, built by the same code
(jaxtl.engine.build.build_steps with `abstract=True`: SGD with Nesterov momentum and the EyePACS
config's optimizer, softmax cross-entropy, BatchNorm statistics over the global batch or
each chip's images (`--batch_norm_scope`, model.batch_norm_scope), `model.dtype=bfloat16`), its state abstract (nothing materialised) and its batch
(jaxtl.engine.projection.abstract_batch) the uint8 canvases and warps of the
training augmentation (crop, flip, rotation; `--warp off`: finished uint8 pixels), sharded on
the topology's chips. `--reference` also compiles the flax examples' ImageNet ResNet-50 v1.5 step
(examples/imagenet: bfloat16, SGD with Nesterov momentum 0.9, L2 weight decay in the loss,
per-device BatchNorm statistics under a data-parallel map, gradients averaged over the chips,
bfloat16 images already normalised on the host), written here from its description; both steps
see the same classes, batch and topology.

Per chip and step, from `compiled.cost_analysis()` and `compiled.memory_analysis()` (per device,
times the devices of a chip: a v4 chip's two TensorCores are two devices): FLOPs and bytes
accessed; a roofline lower bound of the step time, max(FLOPs / peak bf16 FLOP/s, bytes /
HBM bandwidth) (XLA's own `optimal_seconds` comes out negative for whole training steps), the
images/s per chip it allows, and the model FLOP utilisation at that speed. These are
projections from the compiler's counts, not measurements on a TPU. Prints and appends one JSON
line per step compiled.
"""

from __future__ import annotations

import argparse
import functools
import math
import pathlib
import re
import sys
import time
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxtl.config.files import load_config
from jaxtl.core import chips, tasks
from jaxtl.engine import build, projection
from jaxtl.models.layers import BATCH_NORM_SCOPES

sys.path.insert(0, str(pathlib.Path(__file__).parent))  # run as a script or with -m
from results_line import report

NUM_CLASSES = 1000  # both steps: the flax example's ImageNet head
RESNET50_TRAIN_GFLOP_224 = 3 * 4.11 * 2  # forward 4.11 GMAC at 224 px, backward twice that


def abstract(tree: Any, sharding: NamedSharding) -> Any:
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def jaxtl_step(arch: str, mesh: Mesh, batch_size: int, resolution: int,
               warp: bool, rotate_degrees: float, batch_norm_scope: str
               ) -> tuple[Any, tuple[Any, Any]]:
    """jaxtl's train step for `arch`, built by `jaxtl.engine.build.build_steps` as a run builds
    it (abstract: shapes only), and the abstract (state, batch) to lower it with."""
    config = load_config("configs/eyepacs.py")
    config.model.arch, config.model.dtype = arch, "bfloat16"
    config.data.resolution, config.data.batch_size = resolution, batch_size
    config.data.augment = "crop,flip,rotate" if warp else "none"
    config.data.rotate_degrees = rotate_degrees
    config.model.batch_norm_scope = batch_norm_scope
    task = tasks.multiclass([str(i) for i in range(NUM_CLASSES)])
    train_transform = build.image_transform(config, augment=True)
    built = build.build_steps(config, task, mesh=mesh, train_transform=train_transform,
                              eval_transform=build.image_transform(config, augment=False),
                              steps_per_epoch=100, total_steps=1000, weights=None,
                              abstract=True)
    batch = projection.abstract_batch(mesh, batch_size, train_transform, task, train=True,
                                      segmentation=False)
    return built.train_step(0), (built.state, batch)


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck: the stride on the 3x3 convolution, the last BatchNorm's scale
    starting at zero, a projection shortcut where the shape changes."""

    filters: int
    strides: int
    dtype: Any

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype)
        norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9,
                                 epsilon=1e-5, dtype=self.dtype)
        y = nn.relu(norm()(conv(self.filters, (1, 1))(x)))
        y = nn.relu(norm()(conv(self.filters, (3, 3), self.strides)(y)))
        y = norm(scale_init=nn.initializers.zeros)(conv(self.filters * 4, (1, 1))(y))
        if x.shape != y.shape:
            x = norm()(conv(self.filters * 4, (1, 1), self.strides)(x))
        return nn.relu(x + y)


class ReferenceResNet50(nn.Module):
    """The flax examples' ResNet50 (examples/imagenet/models.py) as a description: 7x7/2 stem,
    3x3/2 max-pool, stages of 3, 4, 6, 3 bottlenecks of 64..512 filters, mean pool, dense."""

    num_classes: int
    dtype: Any = jnp.bfloat16

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        x = nn.Conv(64, (7, 7), (2, 2), padding=[(3, 3), (3, 3)], use_bias=False,
                    dtype=self.dtype)(x)
        x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                                 dtype=self.dtype)(x))
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
        for stage, blocks in enumerate((3, 4, 6, 3)):
            for block in range(blocks):
                x = Bottleneck(64 * 2**stage, 2 if stage and not block else 1, self.dtype)(x, train)
        x = nn.Dense(self.num_classes, dtype=self.dtype)(jnp.mean(x, axis=(1, 2)))
        return jnp.asarray(x, self.dtype)


def reference_step(mesh: Mesh, batch_size: int, resolution: int
                   ) -> tuple[Any, tuple[Any, Any]]:
    """The flax example's train step (examples/imagenet/train.py) over `mesh`: each chip's
    BatchNorm statistics from its own images, gradients and metrics averaged over the chips."""
    model = ReferenceResNet50(NUM_CLASSES)
    tx = optax.sgd(optax.warmup_cosine_decay_schedule(0.0, 0.1, 500, 10_000), momentum=0.9,
                   nesterov=True)
    shape = (resolution, resolution, 3)

    def init() -> dict[str, Any]:
        variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, *shape), jnp.bfloat16),
                               train=False)
        return {"params": variables["params"], "batch_stats": variables["batch_stats"],
                "opt_state": tx.init(variables["params"])}

    def local_step(state: dict[str, Any], images: jax.Array, labels: jax.Array
                   ) -> tuple[dict[str, Any], dict[str, jax.Array]]:
        def loss_fn(params: Any) -> tuple[jax.Array, tuple[Any, jax.Array]]:
            logits, updates = model.apply({"params": params, "batch_stats": state["batch_stats"]},
                                          images, mutable=["batch_stats"])
            one_hot = jax.nn.one_hot(labels, NUM_CLASSES)
            loss = jnp.mean(optax.softmax_cross_entropy(logits, one_hot))
            l2 = sum(jnp.sum(p**2) for p in jax.tree.leaves(params) if p.ndim > 1)
            return loss + 0.5 * 1e-4 * l2, (updates["batch_stats"], logits)

        (loss, (batch_stats, logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state["params"])
        grads = jax.lax.pmean(grads, "data")
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        new = {"params": optax.apply_updates(state["params"], updates),
               "batch_stats": batch_stats, "opt_state": opt_state}
        metrics = jax.lax.pmean({"loss": loss, "accuracy": jnp.mean(
            jnp.argmax(logits, -1) == labels)}, "data")
        return new, metrics

    replicated, data = PartitionSpec(), PartitionSpec("data")
    # batch_stats differ per chip, as under the example's pmap; here they stay one
    # replicated-typed copy per chip (check_vma off), which costs the same bytes.
    step = jax.jit(jax.shard_map(local_step, mesh=mesh, in_specs=(replicated, data, data),
                                 out_specs=(replicated, replicated), check_vma=False),
                   donate_argnums=0)
    state = abstract(jax.eval_shape(init), NamedSharding(mesh, replicated))
    sharded = NamedSharding(mesh, data)
    images = jax.ShapeDtypeStruct((batch_size, *shape), jnp.bfloat16, sharding=sharded)
    labels = jax.ShapeDtypeStruct((batch_size,), jnp.int32, sharding=sharded)
    return step, (state, images, labels)


def compiled_costs(step: Any, args: tuple[Any, ...], devices_per_chip: int) -> dict[str, Any]:
    """The compiler's counts of one step, per chip (its figures are per device: a v4 chip's
    two TensorCores are two devices, both on the chip's HBM)."""
    start = time.perf_counter()
    compiled = step.lower(*args).compile()
    seconds = time.perf_counter() - start
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    memory = compiled.memory_analysis()
    hlo = compiled.as_text()
    return {"compile_seconds": round(seconds, 1),
            "flops": devices_per_chip * float(cost["flops"]),
            "bytes_accessed": devices_per_chip * float(cost["bytes accessed"]),
            "memory_bytes": devices_per_chip * (
                memory.argument_size_in_bytes + memory.output_size_in_bytes
                - memory.alias_size_in_bytes + memory.temp_size_in_bytes),
            "all_reduces": len(re.findall(r"= [^=]*\ball-reduce(?:-start)?\(", hlo)),
            "hlo_ops": hlo_ops(hlo)}


# an instruction with an array result: dtype, dimensions, the op and the rest of the line
_INSTRUCTION = re.compile(r"%[\w.\-]+ = (\w+)\[([\d,]*)\]\S* ([\w\-]+)\((.*)$", re.MULTILINE)
_BYTES = {"f32": 4, "bf16": 2, "f16": 2, "s32": 4, "u32": 4, "s8": 1, "u8": 1, "pred": 1}
_KINDS = ("convolution", "dot", "concatenate", "transpose", "copy", "reduce-window",
          "select-and-scatter", "gather", "scatter")


def hlo_ops(hlo: str) -> dict[str, list[float]]:
    """Per op kind of the compiled HLO (inside fusions too): [count, GB of results]; grouped
    convolutions (depthwise: feature_group_count > 1) apart from the rest."""
    found = {kind: [0, 0.0] for kind in (*_KINDS, "grouped_convolution")}
    for dtype, dims, op, rest in _INSTRUCTION.findall(hlo):
        if op not in found:
            continue
        if op == "convolution" and re.search(r"feature_group_count=(\d+)", rest):
            op = "grouped_convolution"
        size = _BYTES.get(dtype, 4) * math.prod(int(d) for d in dims.split(",") if d)
        found[op][0] += 1
        found[op][1] += size / 1e9
    return {kind: [count, round(gb, 3)] for kind, (count, gb) in found.items() if count}


def roofline(costs: dict[str, Any], chip: chips.ChipKind, images_per_chip: int) -> dict[str, Any]:
    """Roofline lower bound of the step time and what it implies, per chip."""
    compute = costs["flops"] / chip.peak_bf16_flops
    memory = costs["bytes_accessed"] / chip.hbm_bytes_per_second
    step = max(compute, memory)
    return {"gflop_per_image": round(costs["flops"] / images_per_chip / 1e9, 2),
            "bytes_accessed_gb": round(costs["bytes_accessed"] / 1e9, 2),
            "memory_gb": round(costs["memory_bytes"] / 1e9, 2),
            "hbm_gb": round(chip.hbm_bytes / 1e9, 2),
            "roofline_step_ms": round(step * 1e3, 2),
            "bound": "memory" if memory >= compute else "compute",
            "images_per_second_per_chip": round(images_per_chip / step),
            "mfu": round(compute / step, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--topology", default="v5e:2x4", help="e.g. v5e:2x4, v4:2x2x1")
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--per_chip", type=int, default=128, help="images per chip and step")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--warp", choices=("on", "off"), default="on",
                        help="on: the training augmentation's warp inside the step")
    parser.add_argument("--rotate_degrees", type=float, default=None,
                        help="the warp's largest rotation (default: the EyePACS config's, 180; "
                             "TPUs warp any rotation without gathers, jaxtl.data.shear_warp)")
    parser.add_argument("--batch_norm_scope", choices=BATCH_NORM_SCOPES, default="global",
                        help="jaxtl's model.batch_norm_scope: BatchNorm statistics over the "
                             "global batch or each chip's images")
    parser.add_argument("--steps", default="jaxtl,reference",
                        help="which steps to compile, in one process: jaxtl, reference "
                             "(the flax examples' ResNet-50) or both")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    topology = chips.parse_topology(args.topology)  # the chip table's one home
    chip = topology.chip
    devices = projection.topology_devices(topology)
    mesh = Mesh(np.asarray(devices), ("data",))
    per_chip_devices = projection.devices_per_chip(devices)  # 2 on v4 (no megacore)
    if args.per_chip % per_chip_devices:
        raise SystemExit(f"--per_chip {args.per_chip}: a multiple of the {per_chip_devices} "
                         f"devices of a {args.topology} chip")
    batch_size = args.per_chip * topology.chips
    common = {"topology": args.topology, "chips": topology.chips, "per_chip": args.per_chip,
              "resolution": args.resolution, "dtype": "bfloat16", "projection": "xla_roofline",
              "jax": jax.__version__}
    rows = {}
    which = args.steps.split(",")
    if "jaxtl" in which:
        # EyePACS rotates fundus photographs by up to 180 degrees
        rotation = (args.rotate_degrees if args.rotate_degrees is not None
                    else load_config("configs/eyepacs.py").data.rotate_degrees)
        step, step_args = jaxtl_step(args.arch, mesh, batch_size, args.resolution,
                                     args.warp == "on", rotation, args.batch_norm_scope)
        rows["jaxtl"] = {"step": "jaxtl", "arch": args.arch, "warp": args.warp,
                         "rotate_degrees": rotation,
                         "batch_norm_scope": args.batch_norm_scope, **common,
                         **(costs := compiled_costs(step, step_args, per_chip_devices)),
                         **roofline(costs, chip, args.per_chip)}
    if "reference" in which:
        step, step_args = reference_step(mesh, batch_size, args.resolution)
        rows["reference"] = {"step": "flax_examples_imagenet", "arch": "resnet50", **common,
                             **(costs := compiled_costs(step, step_args, per_chip_devices)),
                             **roofline(costs, chip, args.per_chip)}
    if len(rows) == 2:
        rows["jaxtl"]["step_time_over_reference"] = round(
            rows["jaxtl"]["roofline_step_ms"] / rows["reference"]["roofline_step_ms"], 3)
    for row in rows.values():
        if row["arch"] == "resnet50" and args.resolution == 224:
            row["analytic_gflop_per_image"] = round(RESNET50_TRAIN_GFLOP_224, 2)
        report(row, args.out)


if __name__ == "__main__":
    main()
