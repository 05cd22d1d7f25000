"""Train-step images/s of every jaxtl architecture against timm in PyTorch, in the same run.

    python benchmarks/train_step_vs_timm.py --timm_python /path/to/timm-venv/bin/python \
        --out benchmarks/results/train_step_224_cpu.jsonl [--archs resnet18,resnet50] [--steps 2]
    python benchmarks/train_step_vs_timm.py --table benchmarks/results/train_step_224_cpu.jsonl
    python benchmarks/train_step_vs_timm.py --timm_python /path/to/timm-venv/bin/python \
        --archs vit_base_patch16_224,convnext_tiny --batch_size 4 --steps 2 \
        --out benchmarks/results/train_step_vit_convnext_224_b4_cpu.jsonl

For each architecture it runs `python -m jaxtl.commands.bench` (train step only) and
`benchmarks/timm_train_step.py` one after the other, each in a fresh process, and alternates
which of the two goes first, so that a slow spell of a shared machine hits both sides alike.
Both sides: 224 px, batch 32, float32, 5 classes, SGD with Nesterov momentum, softmax
cross-entropy, all CPU cores. timm's side builds the architecture's timm twin: the name and
`timm.create_model` arguments of its `TimmCheckpoint` (`models.timm_checkpoint`: e.g. a ViT's
`dynamic_img_size`/`dynamic_img_pad`, which jaxtl's ViTs always have; `vit_base_patch16_224_avg`
is timm's `vit_base_patch16_224` with `global_pool="avg"`). Every result is appended to --out as one JSON line as soon as
it is measured. --table prints the Markdown table of a results file (ratio = jaxtl / timm).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]


def jaxtl_command(arch: str, resolution: int, batch_size: int, steps: int) -> list[str]:
    return [sys.executable, "-m", "jaxtl.commands.bench", "--config", "configs/eyepacs.py",
            "--steps", str(steps), "--pipeline_batches", "0",
            f"--config.demo.arch={arch}", f"--config.demo.resolution={resolution}",
            f"--config.demo.batch_size={batch_size}", "--config.demo.num_workers=0"]


def timm_twin(arch: str) -> tuple[str, dict]:
    """timm's name and `create_model` arguments for jaxtl's `arch` (small_cnn: itself; its
    twin is defined in timm_train_step.py)."""
    sys.path.insert(0, str(REPO))
    from jaxtl.models import timm_checkpoint

    checkpoint = timm_checkpoint(arch)
    if checkpoint is None:
        return arch, {}
    return checkpoint.model_name(arch), dict(checkpoint.timm_kwargs)


def timm_command(python: str, arch: str, resolution: int, batch_size: int,
                 steps: int) -> list[str]:
    name, kwargs = timm_twin(arch)
    return [python, str(REPO / "benchmarks" / "timm_train_step.py"), "--arch", name,
            "--resolution", str(resolution), "--batch_size", str(batch_size),
            "--steps", str(steps), "--timm_kwargs", json.dumps(kwargs)]


def run(command: list[str], timeout: float) -> dict:
    """The JSON object a benchmark prints last, or the error it ended with."""
    start = time.perf_counter()
    try:
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                                timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - start
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip("* \t")]
        return {"error": lines[-1].strip() if lines else f"exit code {result.returncode}",
                "exit_code": result.returncode, "stderr_tail": lines[-15:],
                "process_seconds": wall}
    figures = json.loads(result.stdout[result.stdout.index("{"):])
    return figures | {"process_seconds": wall}


def measure(args: argparse.Namespace) -> None:
    if args.archs:
        archs = args.archs.split(",")
    else:
        sys.path.insert(0, str(REPO))
        from jaxtl.models import list_models

        archs = list_models()
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"cpu_count": os.cpu_count(), "machine": platform.machine()}
    for i, arch in enumerate(archs):
        sides = {
            "jaxtl": jaxtl_command(arch, args.resolution, args.batch_size, args.steps),
            "timm": timm_command(args.timm_python, arch, args.resolution, args.batch_size,
                                 args.steps),
        }
        order = ["jaxtl", "timm"] if i % 2 == 0 else ["timm", "jaxtl"]
        for position, side in enumerate(order):
            load_before = os.getloadavg()[0]  # other jobs on the machine show here
            figures = run(sides[side], args.timeout)
            record = {"framework": side, "arch": arch, "order": position, **machine,
                      "load_average_1min_before": load_before, **figures}
            with out.open("a") as file:
                file.write(json.dumps(record) + "\n")
            images = figures.get("train_images_per_second")
            print(f"{arch:22s} {side:5s} " + (f"{images:7.2f} images/s" if images
                                               else figures.get("error", "?")), flush=True)


def _cell(figures: dict, images_per_second: float | None) -> str:
    if images_per_second:
        return f"{images_per_second:.2f}"
    return figures.get("error", "not measured")


def table(path: pathlib.Path) -> str:
    """Markdown rows: arch, jaxtl and timm images/s, their ratio, jaxtl compile seconds."""
    results: dict[str, dict[str, dict]] = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        results.setdefault(record["arch"], {})[record["framework"]] = record
    rows = ["| architecture | jaxtl images/s | timm images/s | jaxtl / timm | jaxtl compile (s) |",
            "| --- | --- | --- | --- | --- |"]
    for arch in sorted(results):
        jaxtl, timm = results[arch].get("jaxtl", {}), results[arch].get("timm", {})
        a, b = jaxtl.get("train_images_per_second"), timm.get("train_images_per_second")
        ratio = f"{a / b:.2f}" if a and b else "-"
        compile_seconds = f"{c:.0f}" if (c := jaxtl.get("compile_seconds")) else "-"
        rows.append(f"| {arch} | {_cell(jaxtl, a)} | {_cell(timm, b)} | {ratio} | "
                    f"{compile_seconds} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--timm_python", help="a Python with torch and timm installed")
    parser.add_argument("--out", help="JSON-lines file the results are appended to")
    parser.add_argument("--archs", default="", help="comma list; default: every architecture")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2, help="timed steps after a warm-up step")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per benchmark")
    parser.add_argument("--table", help="print the Markdown table of this results file")
    args = parser.parse_args()
    if args.table:
        print(table(pathlib.Path(args.table)))
        return
    if not args.timm_python or not args.out:
        parser.error("--timm_python and --out are needed to measure (or pass --table FILE)")
    measure(args)


if __name__ == "__main__":
    main()
