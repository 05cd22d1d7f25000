"""NIH ChestX-ray14 (112k frontal radiographs, 14 findings mined from reports).

    python -m jaxtl.main --config configs/cxr14.py --workdir runs/cxr14
    python -m jaxtl.main --config configs/cxr14.py --config.data.root=/data/ChestX-ray14 \\
        --config.chest.split=official --config.data.task=all ...

The chest X-ray study of configs/chexpert.py on ChestX-ray14. CXR14 has no Lung Opacity label:
`lung_opacity` (the default task) uses the documented mapping in jaxtl/data/chest/labels.py
(any of the opacity findings).
"""

from __future__ import annotations

import pathlib

import ml_collections

from jaxtl.config.files import load_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    del arg
    return load_config(f"{pathlib.Path(__file__).with_name('chexpert.py')}:cxr14")
