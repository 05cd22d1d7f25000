"""What each way of fine-tuning a ViT costs: full fine-tuning, LoRA, rematerialisation and
gradient accumulation of a ViT at 224 px (ViT-B/16 on this machine's CPU; benchmarks/gpu.sh:
ViT-L/16 on a GPU), in one run.

    python benchmarks/finetune_memory.py --arch vit_base_patch16_224 --batch_size 8 \
        --steps 2 --out benchmarks/results/finetune_memory_cpu.jsonl

Each variant is jaxtl's own train step (jaxtl.engine.build.build_steps from the EyePACS
config with the variant's keys: AdamW, `--dtype` (float32), 5 classes, no augmentation),
compiled for one device. Per variant: XLA's compiled memory analysis (arguments: the state and the batch;
temporaries: activations and what the backward pass keeps; the peak is their sum with the
outputs that do not reuse the donated state), the optimizer state's bytes, the trainable
parameters, and the median time of `--steps` steps after one warm-up step. Ratios are against
full fine-tuning in the same run. LoRA's base is random here (its cost does not depend on the
weights).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time
from typing import Any

import jax
import numpy as np

from jaxtl.config.files import load_config
from jaxtl.core import tasks
from jaxtl.engine import build, steps

sys.path.insert(0, str(pathlib.Path(__file__).parent))  # run as a script or with -m
from results_line import report  # noqa: E402

VARIANTS = {
    "full": {},
    "lora": {"train.adapter": "lora"},
    "remat": {"model.remat": True},
    "accumulation_4": {"train.accumulation_steps": 4},
}


def variant_config(arch: str, batch_size: int, dtype: str, settings: dict[str, Any]):
    config = load_config("configs/eyepacs.py")
    config.model.arch, config.data.resolution, config.model.dtype = arch, 224, dtype
    config.data.batch_size, config.data.augment = batch_size, "none"
    config.optim.name, config.optim.lr, config.optim.weight_decay = "adamw", 1e-4, 0.05
    for key, value in settings.items():
        section, name = key.split(".")
        config[section][name] = value
    return config


def measure(arch: str, batch_size: int, dtype: str, step_count: int, name: str,
            settings: dict[str, Any]) -> dict[str, Any]:
    config = variant_config(arch, batch_size, dtype, settings)
    task = tasks.multiclass([str(c) for c in range(5)])
    mesh = steps.make_mesh(jax.devices()[:1])
    transform = build.image_transform(config, augment=False)
    built = build.build_steps(config, task, mesh=mesh, train_transform=transform,
                              eval_transform=transform, steps_per_epoch=100, total_steps=1000,
                              weights=None)
    rng = np.random.default_rng(0)
    batch = {"image": rng.integers(0, 256, (batch_size, 224, 224, 3)).astype(np.uint8),
             "label": rng.integers(0, 5, batch_size).astype(np.int32),
             "valid": np.ones(batch_size, bool)}
    batch = jax.device_put(batch, steps.NamedSharding(mesh, steps.PartitionSpec("data")))
    step = built.train_step(0)
    started = time.perf_counter()
    compiled = step.lower(built.state, batch).compile()
    compile_seconds = time.perf_counter() - started
    memory = compiled.memory_analysis()
    parameters = build.parameter_record(built.state, built.optimizer.plan, 1000)
    state, times = built.state, []
    for _ in range(step_count + 1):
        started = time.perf_counter()
        state, metrics = compiled(state, batch)
        jax.block_until_ready(metrics["loss"])
        times.append(time.perf_counter() - started)
    peak = (memory.argument_size_in_bytes + memory.output_size_in_bytes
            - memory.alias_size_in_bytes + memory.temp_size_in_bytes)
    return {"variant": name, "arch": arch, "batch_size": batch_size, "dtype": dtype,
            "settings": settings,
            "platform": jax.devices()[0].platform, "compile_seconds": round(compile_seconds, 1),
            "step_seconds": round(statistics.median(times[1:]), 3),
            "argument_bytes": memory.argument_size_in_bytes,
            "temp_bytes": memory.temp_size_in_bytes, "peak_bytes": peak,
            "optimizer_state_bytes": parameters["optimizer_state_bytes"],
            "trainable_parameters": parameters["trainable"],
            "jax": jax.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="vit_base_patch16_224")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--dtype", default="float32", help="model.dtype: float32, bfloat16")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    rows = []
    for name in args.variants.split(","):
        rows.append(measure(args.arch, args.batch_size, args.dtype, args.steps, name,
                            VARIANTS[name]))
        full = rows[0]
        for key in ("peak_bytes", "temp_bytes", "optimizer_state_bytes", "step_seconds"):
            rows[-1][f"{key}_over_full"] = round(rows[-1][key] / full[key], 3) if full[key] \
                else None
        report(rows[-1], args.out)
    print(json.dumps([(r["variant"], r["peak_bytes_over_full"], r["step_seconds_over_full"])
                      for r in rows]))


if __name__ == "__main__":
    main()
