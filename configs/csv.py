"""Your own images listed in a table (CSV): one row per image.

    python -m jaxtl.main --config configs/csv.py --workdir runs/csv-demo          # demo data
    python -m jaxtl.main --config configs/csv.py --workdir runs/knee \\
        --config.data.root=/data/knee/labels.csv --config.csv.class_column=grade \\
        --config.csv.ordinal=True --config.eval.best_metric=kappa
    python -m jaxtl.main --config configs/csv.py:labels --workdir runs/findings \\
        --config.data.root=/data/xrays.csv --config.csv.label_columns='Effusion,Edema' \\
        --config.data.channels=1 --config.data.mean='(0.5,)' --config.data.std='(0.25,)'

The argument `labels` starts from several label columns (multi-label, mean AUROC) instead of
one class column. The `csv` section (columns, classes, policies, bit depth) and the data
defaults: jaxtl/data/table/spec.py; the README's "Your own dataset" shows a table.
"""

from __future__ import annotations

import ml_collections

from jaxtl.config.base import base_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = base_config("csv")
    if arg == "labels":
        config.data.task = "labels"
        config.csv.label_columns = "referable,proliferative"  # the demo table's; name yours
        config.eval.best_metric = "mean_auroc"
    settings(config)
    return config


def settings(config: ml_collections.ConfigDict) -> None:
    """The experiment's settings (configs/folders.py takes them too)."""
    config.data.resolution = 224
    config.data.batch_size = 32
    config.eval.batch_size = 64
    config.model.arch = "resnet50"
    config.optim.name = "adam"
    config.optim.lr = 1e-4
    config.train.epochs = 30
