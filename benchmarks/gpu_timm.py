"""timm's train step on one NVIDIA GPU, tuned as PyTorch users run it (benchmarks/gpu.sh).

    python benchmarks/gpu_timm.py --arch resnet50 [--resolution 224] [--batch_size 256] \
        [--steps 20] [--out benchmarks/results/gpu.jsonl]

bfloat16 autocast (AMP), channels-last memory format, `torch.compile`, SGD with Nesterov
momentum and weight decay, softmax cross-entropy, 5 classes, random images made once on the
GPU. Three untimed steps (compilation) come first. Prints and appends one JSON line.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import timm
import torch
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).parent))  # run as a script or with -m
from results_line import report  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", required=True)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True
    model = timm.create_model(args.arch, pretrained=False, num_classes=5).cuda().train()
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True,
                                weight_decay=1e-4)
    images = torch.randn(args.batch_size, 3, args.resolution, args.resolution, device="cuda")
    images = images.to(memory_format=torch.channels_last)
    labels = torch.randint(0, 5, (args.batch_size,), device="cuda")
    compiled = torch.compile(model)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(compiled(images), labels)
        loss.backward()
        optimizer.step()

    start = time.perf_counter()
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    warmup = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / args.steps
    result = {"framework": "timm", "arch": args.arch, "resolution": args.resolution,
              "batch_size": args.batch_size, "dtype": "bfloat16 autocast",
              "device": torch.cuda.get_device_name(), "compile_seconds": round(warmup, 1),
              "train_images_per_second": round(args.batch_size / seconds, 1),
              "torch": torch.__version__, "timm": timm.__version__}
    report(result, args.out)


if __name__ == "__main__":
    main()
