#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: jaxtl's bfloat16 train step against timm in PyTorch (AMP,
# channels-last, torch.compile) for resnet50, densenet121, efficientnet_b0, ViT-B/16
# (vit_base_patch16_224) and ConvNeXt-T (convnext_tiny) at 224 px, on the first GPU, model
# FLOP utilisation from XLA's cost analysis, and the prepared-data / synthetic ratio of training
# fed by the Grain pipeline, and a ViT-L/16 fine-tune at 224 px, batch 16 (full, rematerialised,
# LoRA: memory and step time, benchmarks/finetune_memory.py). One JSON line per measurement in
# $OUT.
#
#   pip install -e '.[cuda]'                       # jaxtl with jax[cuda12]
#   TIMM_PYTHON=/path/to/torch-venv/bin/python bash benchmarks/gpu.sh
#
# TIMM_PYTHON: a Python with torch (CUDA) and timm (default: python). BATCH (default 256),
# STEPS (default 20), ARCHS (default the five above, space-separated), GPU (the one device
# both sides use: default the first of CUDA_VISIBLE_DEVICES, else 0; jaxtl would otherwise
# shard its batch over every GPU while PyTorch uses one), PEAK_TFLOPS (the GPU's dense
# bfloat16 peak, if its name is not known to benchmarks/gpu_step.py), OUT (default
# benchmarks/results/gpu.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu.jsonl}
TIMM_PYTHON=${TIMM_PYTHON:-python}
BATCH=${BATCH:-256}
ARCHS=${ARCHS:-resnet50 densenet121 efficientnet_b0 vit_base_patch16_224 convnext_tiny}
GPU=${GPU:-${CUDA_VISIBLE_DEVICES:-0}}
export CUDA_VISIBLE_DEVICES=${GPU%%,*}
STEPS=${STEPS:-20}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi -L
for arch in $ARCHS; do
  python benchmarks/gpu_step.py --arch "$arch" --batch_size "$BATCH" --steps "$STEPS" \
    --peak_tflops "${PEAK_TFLOPS:-0}" --out "$OUT"
  "$TIMM_PYTHON" benchmarks/gpu_timm.py --arch "$arch" --batch_size "$BATCH" --steps "$STEPS" \
    --out "$OUT"
done
# Training fed from prepared shards (EyePACS-like demo photographs at 256 px, stored at 224)
# against a batch already on the device: same step, model, batch.
python benchmarks/end_to_end.py --config configs/eyepacs.py \
  --config.demo.arch=resnet50 --config.demo.resolution=224 --config.demo.batch_size="$BATCH" \
  --config.demo.image_size=256 --config.demo.num_patients=2000 --config.model.dtype=bfloat16 \
  --config.data.cache_dir="${TMPDIR:-/tmp}/jaxtl-gpu-bench" \
  --workers "$(nproc)" --steps "$STEPS" --rounds 3 --out "$OUT"
# ViT-L/16 (RETFound's size) fine-tuned at 224 px, batch 16, bfloat16: does it fit a 24 GB GPU
# with remat, and what do LoRA and remat cost and save against full fine-tuning?
python benchmarks/finetune_memory.py --arch vit_large_patch16_224 --batch_size 16 \
  --dtype bfloat16 --steps "$STEPS" --variants full,remat,lora --out "$OUT"
echo "results appended to $OUT"
