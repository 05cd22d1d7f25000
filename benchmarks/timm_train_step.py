"""Train-step images/s of a timm model in PyTorch: the peer that `python -m jaxtl.commands.bench` is compared with.

Run it with a Python that has torch and timm (jaxtl itself never imports torch):

    /path/to/timm-venv/bin/python benchmarks/timm_train_step.py --arch resnet50 \
        --resolution 224 --batch_size 32 --steps 2

Prints one JSON line. The step matches jaxtl's train step on the EyePACS config
(`configs/eyepacs.py`): random float32 NCHW images and integer labels made once, a timm model
with a `num_classes` linear classifier in training mode (BatchNorm statistics updated), mean
softmax cross-entropy, SGD with Nesterov momentum 0.9 and coupled weight decay 1e-4. One
untimed warm-up step comes first, as jaxtl's compiling step. `small_cnn` is jaxtl's own
baseline, not a timm model: its PyTorch twin is defined here. `--timm_kwargs` (a JSON object)
passes the `timm.create_model` arguments that give timm's model jaxtl's layout (the
architecture's `TimmCheckpoint.timm_kwargs`: a ViT's `dynamic_img_size`, `global_pool="avg"`),
as benchmarks/train_step_vs_timm.py does for every architecture.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import timm
import torch
import torch.nn.functional as F
from torch import nn


class SmallCNN(nn.Module):
    """jaxtl's `small_cnn`: 4 x (3x3 bias-free conv, BatchNorm, ReLU, 2x2 max-pool), mean pool."""

    def __init__(self, num_classes: int, in_chans: int = 3, widths=(32, 64, 128, 256)):
        super().__init__()
        layers: list[nn.Module] = []
        for width in widths:
            layers += [nn.Conv2d(in_chans, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            in_chans = width
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean(dim=(2, 3)))


def create(arch: str, num_classes: int, kwargs: dict | None = None) -> nn.Module:
    if arch == "small_cnn":
        return SmallCNN(num_classes)
    return timm.create_model(arch, pretrained=False, num_classes=num_classes, **(kwargs or {}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", required=True, help="timm model name (or small_cnn)")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step")
    parser.add_argument("--num_classes", type=int, default=5, help="EyePACS grades")
    parser.add_argument("--timm_kwargs", default="{}",
                        help="JSON object of further timm.create_model arguments")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="torch intra-op threads (default: all cores, as XLA:CPU uses)")
    args = parser.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    model = create(args.arch, args.num_classes, json.loads(args.timm_kwargs)).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True,
                                weight_decay=1e-4)
    images = torch.randn(args.batch_size, 3, args.resolution, args.resolution)
    labels = torch.randint(0, args.num_classes, (args.batch_size,))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()

    start = time.perf_counter()
    step()
    warmup_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = time.perf_counter() - start
    print(json.dumps({
        "framework": "timm", "arch": args.arch, "resolution": args.resolution,
        "batch_size": args.batch_size, "dtype": "float32", "timed_steps": args.steps,
        "timm_kwargs": json.loads(args.timm_kwargs),
        "warmup_seconds": warmup_seconds,
        "train_images_per_second": args.steps * args.batch_size / seconds,
        "train_step_seconds": seconds / args.steps,
        "params": sum(p.numel() for p in model.parameters()),
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "timm": timm.__version__ if args.arch != "small_cnn" else None,
    }))


if __name__ == "__main__":
    main()
