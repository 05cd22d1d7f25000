#!/usr/bin/env bash
# ResNet18 train-step throughput on this machine at the resolutions the demo could use.
# Usage: bash benchmarks/demo_resolution.sh > benchmarks/results/demo_resolution_cpu.jsonl
set -euo pipefail
for resolution in 64 80 96 128; do
  python -m jaxtl.commands.bench --config configs/eyepacs.py --steps 5 --pipeline_batches 20 \
    --config.demo.arch=resnet18 --config.demo.resolution=$resolution \
    --config.demo.batch_size=32 --config.demo.num_workers=0 2>/dev/null | python -c \
    'import json, sys; print(json.dumps(json.load(sys.stdin)))'
done
