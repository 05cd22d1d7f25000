"""Hugging Face `transformers` ViTModel / Dinov2Model download -> jaxtl pretrained checkpoint.

    python -m jaxtl.convert_weights.hf --weights DIR --out DIR [--arch ARCH]

DIR is a downloaded model folder (`huggingface-cli download microsoft/rad-dino`, `owkin/phikon`):
`config.json` beside `model.safetensors` (or `pytorch_model.bin`, which needs torch), and
usually `preprocessor_config.json` (its `image_mean`/`image_std`; else give `--mean` and
`--std`). What is read and how: `jaxtl.conversion.hf`.
"""

from __future__ import annotations

from jaxtl.conversion.hf import convert

from . import foreign

if __name__ == "__main__":
    foreign.run_converter(convert, "downloaded Hugging Face model folder (config.json + "
                          "model.safetensors)", "config.json describes")
