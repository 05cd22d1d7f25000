"""CoNSeP nucleus types from nucleus-centred patches (7 types, or 4 merged classes).

    python -m jaxtl.main --config configs/consep.py --workdir runs/consep
    python -m jaxtl.main --config configs/consep.py --config.data.root=/data/CoNSeP ...

`consep.split` chooses how patches are split: 'random' pools the patches of all tiles and splits
them at random (data.val_fraction, data.test_fraction; patches of one tile on both sides);
'tiles' holds out whole tiles (consep.test_tiles: 0 = the official Test/ tiles, K = K tiles
drawn with data.split_seed; consep.val_tiles tiles of the rest for validation). A sweep over
`consep.split` compares the two with everything else equal.
"""

from __future__ import annotations

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    del arg
    config = common.base_config()
    config.dataset = "consep"
    config.data.task = "type7"  # 'type7': the 7 CoNSeP types; 'type4': other, inflammatory,
    #                             epithelial, spindle-shaped
    config.data.channels = 3
    config.data.resolution = 32  # = consep.patch_size: patches are used at their size
    config.data.augment = "flip,rotate"
    config.data.rotate_degrees = 180.0  # tissue has no preferred orientation
    # 'random' split: about the share of nuclei the official Test/ tiles hold (14 of 41 tiles).
    config.data.val_fraction = 0.1
    config.data.test_fraction = 0.35
    config.data.batch_size = 128
    config.eval.batch_size = 256
    config.eval.best_metric = "accuracy"

    config.consep = ml_collections.ConfigDict()
    config.consep.patch_size = 32  # side of the nucleus-centred patch cut from the tile
    config.consep.border = "reflect"  # past a tile border: 'reflect' (mirror) or 'zero'
    config.consep.split = "tiles"  # 'random' (over patches) or 'tiles' (tiles held out)
    config.consep.test_tiles = 0  # 'tiles': 0 = official Test/ tiles; K = K drawn tiles
    config.consep.val_tiles = 3  # 'tiles': training tiles held out for validation

    config.model.arch = "resnet18"
    config.optim.name = "sgd"
    config.optim.lr = 0.05
    config.optim.schedule = "gradual"
    config.train.epochs = 30

    # The demo: 41 synthetic tiles of 256 px (27 Train, 14 Test), as many as CoNSeP has.
    config.demo.num_patients = 41  # tiles
    config.demo.image_size = 256  # tile side
    config.demo.arch = "resnet18"
    config.demo.resolution = 32
    config.demo.batch_size = 64
    config.demo.epochs = 4
    config.demo.num_workers = 0
    return config
