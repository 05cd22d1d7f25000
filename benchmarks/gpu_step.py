"""jaxtl's bfloat16 train step on one GPU: images/s and model FLOP utilisation (benchmarks/gpu.sh).

    python benchmarks/gpu_step.py --arch resnet50 [--resolution 224] [--batch_size 256] \
        [--steps 20] [--peak_tflops 989] [--out benchmarks/results/gpu.jsonl]

The step of `python -m jaxtl.main` (SGD with Nesterov momentum, softmax cross-entropy, 5
classes, BatchNorm statistics) with `model.dtype=bfloat16`, on one synthetic uint8 batch already
on the device (warped by the EyePACS augmentation's crop, flip and rotation map and normalised
inside the step, as in training; timm's side does no augmentation). FLOPs per step come from XLA's cost
analysis of the compiled step; MFU = FLOPs per second / the GPU's dense bfloat16 peak
(`--peak_tflops`, else looked up from the device name). Prints and appends one JSON line.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import jax

from jaxtl import models, optim
from jaxtl.commands.bench import synthetic_batch
from jaxtl.config.files import load_config
from jaxtl.core import tasks
from jaxtl.core.settings import parse_augment
from jaxtl.data import pipeline
from jaxtl.data.transforms import ImageTransform
from jaxtl.engine import steps

sys.path.insert(0, str(pathlib.Path(__file__).parent))  # run as a script or with -m
from results_line import report  # noqa: E402

# dense bfloat16 tensor-core peaks (TFLOP/s) by a part of the device name
PEAK_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0,
               "L40S": 362.0, "L4": 121.0, "A10": 125.0, "V100": 125.0}


def peak_tflops(name: str) -> float | None:
    for part, peak in PEAK_TFLOPS.items():
        if part in name:
            return peak
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", required=True)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--peak_tflops", type=float, default=0.0)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    config = load_config("configs/eyepacs.py")
    mesh = steps.make_mesh()
    layout = pipeline.Layout.from_mesh(mesh)
    model = models.create_model(args.arch, num_outputs=5, dtype="bfloat16")
    tx = optim.make_optimizer(config, steps_per_epoch=100, total_steps=1000).tx
    shape = (args.resolution, args.resolution, 3)
    state = steps.init_state(model, tx, seed=0, image_shape=shape, mesh=mesh)
    transform = ImageTransform(args.resolution, 3, tuple(config.data.mean),
                               tuple(config.data.std), augment=parse_augment(config.data.augment))
    batch = synthetic_batch(layout, args.batch_size, shape, 5, transform.wire_dtype,
                            transform.warps_on_device)
    step = steps.make_train_step(model, tx, mesh, task=tasks.multiclass(list("01234")),
                                 normalisation=transform.normalisation)
    start = time.perf_counter()
    compiled = step.lower(state, batch).compile()
    compile_seconds = time.perf_counter() - start
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    flops = float(cost.get("flops", 0.0))
    for _ in range(3):
        state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(args.steps):
        state, metrics = compiled(state, batch)
    jax.block_until_ready((state, metrics))
    seconds = (time.perf_counter() - start) / args.steps
    device = jax.devices()[0].device_kind
    peak = args.peak_tflops or peak_tflops(device)
    result = {"framework": "jaxtl", "arch": args.arch, "resolution": args.resolution,
              "batch_size": args.batch_size, "dtype": "bfloat16", "device": device,
              "compile_seconds": round(compile_seconds, 1),
              "train_images_per_second": round(args.batch_size / seconds, 1),
              "step_tflops": round(flops / 1e12, 3),
              "mfu": round(flops / seconds / (peak * 1e12), 3) if peak and flops else None,
              "peak_tflops": peak, "jax": jax.__version__}
    report(result, args.out)


if __name__ == "__main__":
    main()
