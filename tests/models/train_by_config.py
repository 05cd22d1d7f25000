"""Trains each named architecture on tiny demo data, selected by `config.demo.arch` alone.

Used by test_config_selection.py, in a subprocess so that XLA_FLAGS can lower XLA's compile
effort (compilation dominates these tiny runs on a CPU):

    python tests/models/train_by_config.py OUT_DIR ARCH [ARCH ...]

Writes one workdir per architecture under OUT_DIR (demo data under OUT_DIR/cache).
"""

from __future__ import annotations

import pathlib
import sys

from absl import flags

sys.path.insert(0, str(pathlib.Path(__file__).parents[1]))  # tests/: the one tiny-config helper
from conftest import tiny_config  # noqa: E402

from jaxtl.models import min_input_size  # noqa: E402
from jaxtl.training import loop as train  # noqa: E402

CONFIG_FLOOR = 16  # configuration: demo.resolution starts at 16 px


def tiny_demo_config(folder: pathlib.Path, arch: str):
    """Two train steps of batch 8 on 20 tiny demo images at the architecture's smallest input."""
    return tiny_config(folder, overrides={
        "demo.num_patients": 10, "demo.image_size": 32, "demo.arch": arch, "demo.epochs": 1,
        "demo.resolution": max(CONFIG_FLOOR, min_input_size(arch))})


def main(out_dir: str, *archs: str) -> None:
    flags.FLAGS.mark_as_parsed()  # Grain reads absl flags; use their defaults
    root = pathlib.Path(out_dir)
    for arch in archs:
        train.train_and_evaluate(tiny_demo_config(root, arch), root / arch)


if __name__ == "__main__":
    main(*sys.argv[1:])
