"""The built-in demo data: written once per setting into the cache, in the real layout.

Without `data.root`, a run uses synthetic data that the dataset package's demo writer puts in
the dataset's real on-disk layout, so the same reader serves real and demo data. Every demo
dataset holds a `DEMO_README.txt` that says it is synthetic.
"""

from __future__ import annotations

import pathlib

import ml_collections
from absl import logging

from jaxtl.data import registry
from jaxtl.data.cache import cache_root

README_FILE = "DEMO_README.txt"
DEMO_FORMAT_VERSION = 1  # bump when a demo writer changes what it writes


def demo_root(config: ml_collections.ConfigDict) -> pathlib.Path:
    demo = config.demo
    name = (f"{registry.get(config.dataset).name}-v{DEMO_FORMAT_VERSION}-seed{demo.seed}"
            f"-patients{demo.num_patients}-size{demo.image_size}")
    if config.data.tfds:  # a TFDS demo holds the one dataset and config it was prepared for
        name += "-" + config.data.tfds.replace("/", "-")
    return cache_root(config) / "demo" / name


def ensure_demo_data(config: ml_collections.ConfigDict) -> pathlib.Path:
    """Writes the demo dataset once; later runs (and other processes) reuse it."""
    root = demo_root(config)
    if not root.is_dir():
        logging.info("DEMO: writing synthetic %s data to %s (once)", config.dataset, root)
        try:
            registry.get(config.dataset).write_demo(root, config)
        except FileExistsError:
            pass  # another process on this machine wrote it since we looked
    return root
