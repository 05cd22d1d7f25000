"""CoNSeP nucleus types from nucleus-centred patches (7 types, or 4 merged classes).

    python -m jaxtl.main --config configs/consep.py --workdir runs/consep
    python -m jaxtl.main --config configs/consep.py --config.data.root=/data/CoNSeP ...

`consep.split` chooses how patches are split: 'random' pools the patches of all tiles and splits
them at random (data.val_fraction, data.test_fraction; patches of one tile on both sides);
'tiles' holds out whole tiles (consep.test_tiles: 0 = the official Test/ tiles, K = K tiles
drawn with data.split_seed; consep.val_tiles tiles of the rest for validation). A sweep over
`consep.split` compares the two with everything else equal. The `consep` section and the data
defaults: jaxtl/data/consep/spec.py.
"""

from __future__ import annotations

import ml_collections

from jaxtl.config.base import base_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    del arg
    config = base_config("consep")
    config.data.resolution = 32  # = consep.patch_size: patches are used at their size
    config.data.batch_size = 128
    config.eval.batch_size = 256
    config.model.arch = "resnet18"
    config.optim.name = "sgd"
    config.optim.lr = 0.05
    config.optim.schedule = "gradual"
    config.train.epochs = 30
    config.demo.arch = "resnet18"
    config.demo.resolution = 32
    config.demo.batch_size = 64
    config.demo.epochs = 4
    config.demo.num_workers = 0
    return config
