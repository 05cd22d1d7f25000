"""NIH ChestX-ray14 (112k frontal radiographs, 14 findings mined from reports).

    python -m jaxtl.main --config configs/cxr14.py --workdir runs/cxr14
    python -m jaxtl.main --config configs/cxr14.py --config.data.root=/data/ChestX-ray14 \\
        --config.chest.split=official --config.data.task=all ...

CXR14 has no Lung Opacity label: `lung_opacity` (the default task) uses the documented
mapping in jaxtl/data/chest_labels.py (any of the opacity findings).
"""

from __future__ import annotations

import ml_collections

from configs import chest_common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    del arg
    return chest_common.chest_config("cxr14")
