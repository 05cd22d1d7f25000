"""Compile time of a run's train and eval steps with and without the persistent cache.

    python benchmarks/compile_cache.py [--arch resnet18 --resolution 80 --batch 16 --repeats 2]

Each measurement is a fresh Python process, as each run of a sweep is: `off` has no persistent
cache, `cold` starts from an empty cache folder (and fills it), `warm` finds what `cold` wrote.
The processes alternate (off, cold, warm, off, cold, warm, ...), so load changes on a shared
machine affect each mode alike. Prints one JSON line per process and the medians.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's jaxtl and configs, not an installed copy
MODES = ("off", "cold", "warm")


def measure(arch: str, resolution: int, batch: int, cache: str | None) -> dict:
    """In this process: seconds to compile the train step and the eval step."""
    import jax
    import numpy as np

    from jaxtl import models, optim
    from jaxtl.config.base import base_config
    from jaxtl.core import compile_cache
    from jaxtl.engine import steps

    if cache is not None:
        compile_cache.enable(cache)
    config = base_config("eyepacs")
    mesh = steps.make_mesh()
    model = models.create_model(arch, num_outputs=5, head="linear", dropout=0.0,
                                dtype="float32")
    tx = optim.make_optimizer(config, steps_per_epoch=10, total_steps=100).tx
    shape = (resolution, resolution, 3)
    state = steps.init_state(model, tx, seed=0, image_shape=shape, mesh=mesh)
    rng = np.random.default_rng(0)
    train_batch = {"image": rng.standard_normal((batch, *shape), np.float32),
                   "label": rng.integers(0, 5, batch).astype(np.int32)}
    eval_batch = {**train_batch, "index": np.arange(batch, dtype=np.int32),
                  "mask": np.ones(batch, bool)}
    result = {}
    for name, step, example in (("train", steps.make_train_step(model, tx, mesh), train_batch),
                                ("eval", steps.make_eval_step(model, mesh), eval_batch)):
        start = time.perf_counter()
        step.lower(state, example).compile()
        result[f"{name}_compile_seconds"] = time.perf_counter() - start
    result["platform"] = jax.devices()[0].platform
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--resolution", type=int, default=80)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.arch, args.resolution, args.batch, args.cache)))
        return
    rows = []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as folder:
            for mode in MODES:
                command = [sys.executable, __file__, "--child", mode, "--arch", args.arch,
                           "--resolution", str(args.resolution), "--batch", str(args.batch)]
                if mode != "off":
                    command += ["--cache", folder]
                output = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                                        check=True).stdout
                row = {"mode": mode, "repeat": repeat, "arch": args.arch,
                       "resolution": args.resolution, "batch": args.batch,
                       **json.loads(output.strip().splitlines()[-1])}
                rows.append(row)
                print(json.dumps(row), flush=True)
    for mode in MODES:
        of_mode = [r for r in rows if r["mode"] == mode]
        train = statistics.median(r["train_compile_seconds"] for r in of_mode)
        evaluation = statistics.median(r["eval_compile_seconds"] for r in of_mode)
        print(f"{mode:>4}: train step {train:6.2f} s, eval step {evaluation:6.2f} s (median)")


if __name__ == "__main__":
    main()
