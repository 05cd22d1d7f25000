"""Trains tiny CoNSeP segmentation runs for test_segmentation_train.py, in one subprocess so that
XLA_FLAGS can lower XLA's compile effort (compiling the UNet's init, train step and tile
predictor is most of these runs on a CPU):

    python tests/evaluators/train_segmentation_runs.py OUT_DIR RUNS_JSON

RUNS_JSON maps a run's name to its tiny_config overrides of configs/consep_seg.py; each run is
written to OUT_DIR/NAME (one demo dataset under OUT_DIR/cache).
"""

from __future__ import annotations

import json
import pathlib
import sys

from absl import flags

sys.path.insert(0, str(pathlib.Path(__file__).parents[1]))  # tests/: the one tiny-config helper
from conftest import tiny_config

from jaxtl.training import loop as train


def main(out_dir: str, runs_json: str) -> None:
    flags.FLAGS.mark_as_parsed()  # Grain reads absl flags; use their defaults
    root = pathlib.Path(out_dir)
    runs: dict[str, dict] = json.loads(runs_json)
    for name, overrides in runs.items():
        train.train_and_evaluate(tiny_config(root, "consep_seg", overrides), root / name)


if __name__ == "__main__":
    main(*sys.argv[1:])
