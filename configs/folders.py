"""Your own images in class folders (the ImageFolder layout): root/<class>/<image>.

    python -m jaxtl.main --config configs/folders.py --workdir runs/folders-demo  # demo data
    python -m jaxtl.main --config configs/folders.py --workdir runs/mine \\
        --config.data.root=/data/my_images

Images are split one by one (folders carry no patients): for patient-wise splits list the
images in a table (configs/csv.py), whose experiment settings this file takes. The `folders`
section: jaxtl/data/table/spec.py.
"""

from __future__ import annotations

import pathlib

import ml_collections

from jaxtl.config.base import base_config
from jaxtl.config.files import load_module


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    del arg
    config = base_config("folders")
    load_module(str(pathlib.Path(__file__).with_name("csv.py"))).settings(config)
    return config
