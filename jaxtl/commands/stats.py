"""What a config's data looks like after every filter and policy, from the label files alone.

    python -m jaxtl.commands.stats --config configs/chexpert.py --config.data.root=/data/chexpert --json

For each split: images, patients (the grouping id: patient; for CoNSeP patches and their tiles;
for BigEarthNet each patch is its own group; "units" names them), and per label
the counts of positive, negative, uncertain and masked values (multi-label tasks) or per class
the number of images (single-label tasks); then the number of patients shared between each
pair of splits, which must be 0. No image file is opened. Without data.root it describes the
demo data (written first if needed).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from absl import flags

from jaxtl.commands import cli
from jaxtl.config import validation as configuration
from jaxtl.core import tasks
from jaxtl.data import loading, registry
from jaxtl.data.records import SPLITS, DatasetSplits, Record
from jaxtl.data.registry import DatasetSpec


def define_flags() -> cli.Options:
    return {
        "config": cli.config_flag("Experiment config file."),
        "json": flags.DEFINE_bool("json", False, "Print one JSON object instead of a table."),
    }


def split_stats(records: Sequence[Record], task: tasks.Task) -> dict[str, Any]:
    out: dict[str, Any] = {"images": len(records),
                           "patients": len({r.patient for r in records})}
    if task.multilabel:
        values = np.asarray([r.label for r in records], np.int64).reshape(len(records),
                                                                        len(task.names))
        out["labels"] = {
            name: {"positive": int((values[:, i] == tasks.POSITIVE).sum()),
                   "negative": int((values[:, i] == tasks.NEGATIVE).sum()),
                   "uncertain": int((values[:, i] == tasks.UNCERTAIN).sum()),
                   "masked": int((values[:, i] == tasks.MASKED).sum())}
            for i, name in enumerate(task.names)}
    elif task.kind != tasks.SEGMENTATION:  # segmentation: the pixels carry the labels
        counts = np.bincount(np.asarray([r.label for r in records], np.int64),
                             minlength=len(task.names))
        out["classes"] = {name: int(c) for name, c in zip(task.names, counts)}
    return out


def dataset_stats(splits: DatasetSplits, spec: DatasetSpec | None = None) -> dict[str, Any]:
    """`spec`: the dataset's, when the caller has it (else looked up by the splits' name)."""
    patients = {name: {r.patient for r in splits.split(name)} for name in SPLITS}
    shared = {f"{a}/{b}": len(patients[a] & patients[b])
              for a, b in itertools.combinations(SPLITS, 2)}
    items, groups = (spec or registry.get(splits.name)).units
    return {"dataset": splits.name, "demo": splits.demo, "task": splits.task.describe(),
            "units": {"images": items, "patients": groups},
            "label_names": list(splits.task.names),
            "splits": {name: split_stats(splits.split(name), splits.task) for name in SPLITS},
            "shared_patients": shared}


def format_table(stats: dict[str, Any]) -> str:
    lines = [f"{stats['dataset']}{' (DEMO)' if stats['demo'] else ''}: {stats['task']}"]
    items, groups = stats["units"]["images"], stats["units"]["patients"]
    for name, split in stats["splits"].items():
        lines.append(f"{name}: {split['images']} {items}, {split['patients']} {groups}")
        if "labels" in split:
            for label, counts in split["labels"].items():
                lines.append(f"  {label:28s} " + "  ".join(f"{k} {v:7d}"
                                                          for k, v in counts.items()))
        elif "classes" in split:
            lines += [f"  {label:28s} {count:7d}" for label, count in split["classes"].items()]
    lines.append(f"{groups} shared between splits: " + ", ".join(
        f"{pair} {count}" for pair, count in stats["shared_patients"].items()))
    return "\n".join(lines)


def main(argv: list[str], options: cli.Options) -> None:
    del argv
    config = options["config"].value
    spec = configuration.validate(config)
    stats = dataset_stats(loading.sampled_splits(config, loading.data_root(config, spec), spec),
                          spec)
    print(json.dumps(stats, indent=2) if options["json"].value else format_table(stats))


if __name__ == "__main__":
    cli.run(main, define_flags, required=("config",))
