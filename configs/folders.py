"""Your own images in class folders (the ImageFolder layout): root/<class>/<image>.

    python -m jaxtl.main --config configs/folders.py --workdir runs/folders-demo  # demo data
    python -m jaxtl.main --config configs/folders.py --workdir runs/mine \\
        --config.data.root=/data/my_images

Images are split one by one (folders carry no patients): for patient-wise splits list the
images in a table (configs/csv.py). The `folders` section: jaxtl/data/table/spec.py.
"""

from __future__ import annotations

import ml_collections

from jaxtl.base_config import base_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    del arg
    config = base_config("folders")
    config.data.resolution = 224
    config.data.batch_size = 32
    config.eval.batch_size = 64
    config.model.arch = "resnet50"
    config.optim.name = "adam"
    config.optim.lr = 1e-4
    config.train.epochs = 30
    return config
