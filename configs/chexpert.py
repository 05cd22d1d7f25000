"""CheXpert (Stanford, 224k chest radiographs): multi-label findings with uncertain labels.

    python -m jaxtl.main --config configs/chexpert.py --workdir runs/chexpert
    python -m jaxtl.main --config configs/chexpert.py --config.data.root=/data/CheXpert-v1.0-small \\
        --config.data.task=competition5 --config.chest.uncertain_per_label=Atelectasis=ones ...
"""

from __future__ import annotations

import ml_collections

from configs import chest_common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    del arg
    return chest_common.chest_config("chexpert")
