"""Converted Hugging Face checkpoints against transformers' outputs, at full size.

    PYTHONPATH=$PWD /path/to/torch-venv/bin/python -m jaxtl.convert_weights.make_library_golden \\
        --out tests/tools/golden --real_sizes /tmp/real
    python -m jaxtl.convert_weights.verify_libraries --folder /tmp/real

`make_library_golden --real_sizes DIR` writes RAD-DINO's and Phikon's full-size layouts with
synthetic weights (each a transformers model folder) and transformers' outputs
(`outputs.npz`, `rows.json`) into DIR, outside the repository (the weights are 350 MB each).
This converts every folder with `jaxtl.conversion.hf` and prints, per model and
resolution, the largest difference of the pooled features and of the token grid after the
second-last block: the full-size rows of docs/parity.md, measured once. The test-size rows
are checked in CI (tests/tools/test_library_converters.py, which uses `backbone_features`).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import tempfile

import jax
import numpy as np
from absl import flags

from jaxtl import models
from jaxtl.commands import cli
from jaxtl.conversion import hf
from jaxtl.engine import transfer
from jaxtl.models.taps import PRE_LOGITS
from jaxtl.models.vit import VisionTransformer, block_name
from jaxtl.workdir import pretrained

from . import synthetic


def backbone_features(converted: pathlib.Path, resolution: int, jit=jax.jit,
                      config_change: dict | None = None) -> tuple:
    """(pooled, features) of a converted ViT backbone for synthetic_input(resolution, 3);
    `config_change` replaces fields of its ViTConfig (e.g. another `pos_interp`)."""
    info = pretrained.read_info(converted)
    backbone = models.create_backbone(info.arch)
    if config_change:
        backbone = VisionTransformer(dataclasses.replace(backbone.config, **config_change))
    params = transfer.load_variables(converted)["params"]["backbone"]
    apply = jit(lambda p, x: backbone.apply({"params": p}, x, train=False))
    return apply(params, synthetic.synthetic_input(resolution, 3))


def differences(converted: pathlib.Path, resolution: int, pooled: np.ndarray,
                grid: np.ndarray | None, jit=jax.jit) -> tuple[float, float | None]:
    """max |jaxtl - library| of the pooled features and of the grid after the second-last
    block (None without a grid)."""
    _, features = backbone_features(converted, resolution, jit)
    pooled_diff = float(np.abs(np.asarray(features[PRE_LOGITS]) - pooled).max())
    if grid is None:
        return pooled_diff, None
    depth = models.create_backbone(pretrained.read_info(converted).arch).config.depth
    got = np.asarray(features[block_name(depth - 2)])
    if got.shape != grid.shape:
        raise ValueError(f"grid {got.shape}, the library's {grid.shape}")
    return pooled_diff, float(np.abs(got - grid).max())


def define_flags() -> cli.Options:
    return {"folder": flags.DEFINE_string("folder", None, "folder written by make_library_golden "
                                          "--real_sizes")}


def main(argv: list[str], options: cli.Options) -> None:
    del argv
    folder = pathlib.Path(options["folder"].value)
    rows = json.loads((folder / "rows.json").read_text())
    with np.load(folder / "outputs.npz") as z:
        arrays = {name: z[name] for name in z.files}
    with tempfile.TemporaryDirectory() as tmp:
        for name in sorted({row.split("/")[0] for row in rows}):
            converted = hf.convert(str(folder / name), str(pathlib.Path(tmp) / name))
            arch = pretrained.read_info(converted).arch
            for row, stats in rows.items():
                if not row.startswith(name + "/"):
                    continue
                resolution = int(row.split("/r")[1])
                pooled, grid = differences(converted, resolution, arrays[f"{row}/pooled"],
                                           arrays[f"{row}/grid"])
                print(f"| {name} | `{arch}`, full size | {resolution} px | {pooled:.2e} | "
                      f"{grid:.2e} | {stats['max_abs']:.3g} | {stats['sensitivity']:.3g} |",
                      flush=True)


if __name__ == "__main__":
    cli.run(main, define_flags, required=("folder",))
