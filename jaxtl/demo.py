"""The built-in demo: what changes when no dataset is configured (data.root is empty)."""

from __future__ import annotations

import ml_collections

from jaxtl.data.demo_data import demo_root


def apply(config: ml_collections.ConfigDict) -> list[str]:
    """Switches an empty-root config to the demo settings; returns the banner lines."""
    if config.data.root:
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
        f"DEMO RUN: no data.root set, so synthetic {config.dataset} data in the real layout is "
        f"used ({demo_root(config)}).",
        "DEMO RUN: demo settings (config.demo): " + (", ".join(changed) or "none changed"),
        "DEMO RUN: for real data pass --config.data.root=/path/to/" + config.dataset,
    ]
