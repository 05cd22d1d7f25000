"""The built-in demo: what changes when no dataset is configured (its location key, data.root or
data.tfds_dir, is empty)."""

from __future__ import annotations

import ml_collections

from jaxtl.data import loading
from jaxtl.data.demo_data import demo_root


def apply(config: ml_collections.ConfigDict) -> list[str]:
    """Switches a config without data to the demo settings; returns the banner lines."""
    if not loading.is_demo(config):
        return []
    demo = config.demo
    changes = {("model", "arch"): demo.arch, ("data", "resolution"): demo.resolution,
               ("data", "batch_size"): demo.batch_size, ("train", "epochs"): demo.epochs,
               ("data", "num_workers"): demo.num_workers,
               ("eval", "bootstrap_samples"): demo.bootstrap_samples}
    changed = []
    for (section, key), value in changes.items():
        old = config[section][key]
        config[section][key] = value
        if old != value:
            changed.append(f"{section}.{key} {old} -> {value}")
    return [
        f"DEMO RUN: no {loading.location_key(config.dataset)} set, so synthetic {config.dataset} "
        f"data in the real layout is "
        f"used ({demo_root(config)}).",
        "DEMO RUN: demo settings (config.demo): " + (", ".join(changed) or "none changed"),
        f"DEMO RUN: for real data pass --config.{loading.location_key(config.dataset)}="
        f"/path/to/{config.dataset}",
    ]
