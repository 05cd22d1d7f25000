"""The built-in demo data: written once per setting into the cache, in the real layout.

Without `data.root`, a run uses synthetic data that the dataset package's demo writer puts in
the dataset's real on-disk layout, so the same reader serves real and demo data. Every demo
dataset holds a `DEMO_README.txt` that says it is synthetic, and the demo writers that draw
lesions or findings record where in the sidecar `DEMO_REGIONS.csv` (jaxtl/data/regions.py): not
part of the real layout, ignored by the readers, read by `jaxtl.explain` to score where a model
looks.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterable

import ml_collections
from absl import logging

from jaxtl.data import regions, registry
from jaxtl.data.cache import cache_root

README_FILE = "DEMO_README.txt"
REGIONS_FILE = "DEMO_REGIONS.csv"
DEMO_FORMAT_VERSION = 3  # bump when a demo writer changes what it writes (2: REGIONS_FILE;
#                           3: EyePACS lesions gathered around one focus, larger microaneurysms)


def demo_root(config: ml_collections.ConfigDict,
              spec: registry.DatasetSpec | None = None) -> pathlib.Path:
    """`spec`: the dataset's, when the caller has it (else looked up)."""
    demo = config.demo
    spec = spec or registry.get(config.dataset)
    name = (f"{spec.name}-v{DEMO_FORMAT_VERSION}-seed{demo.seed}"
            f"-patients{demo.num_patients}-size{demo.image_size}")
    if config.data.tfds:  # a TFDS demo holds the one dataset and config it was prepared for
        name += "-" + config.data.tfds.replace("/", "-")
    return cache_root(config) / "demo" / name


def ensure_demo_data(config: ml_collections.ConfigDict,
                     spec: registry.DatasetSpec | None = None) -> pathlib.Path:
    """Writes the demo dataset once; later runs (and other processes) reuse it."""
    spec = spec or registry.get(config.dataset)
    root = demo_root(config, spec)
    if not root.is_dir():
        logging.info("DEMO: writing synthetic %s data to %s (once)", config.dataset, root)
        try:
            spec.write_demo(root, config)
        except FileExistsError:
            pass  # another process on this machine wrote it since we looked
    return root


def write_regions(root: pathlib.Path, rows: Iterable[tuple[str, str, regions.Box]]) -> None:
    """The sidecar of a demo dataset being written (inside its staged folder)."""
    (pathlib.Path(root) / REGIONS_FILE).write_text(regions.to_csv(rows))


def read_regions(root: pathlib.Path) -> regions.Regions | None:
    """The demo sidecar of a dataset root, or None when it has none."""
    path = pathlib.Path(root) / REGIONS_FILE
    return regions.read_csv(path) if path.is_file() else None
