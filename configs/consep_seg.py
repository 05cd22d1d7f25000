"""CoNSeP nuclei segmentation: a UNet on a zoo backbone, trained on random crops of the tiles.

    python -m jaxtl.main --config configs/consep_seg.py --workdir runs/consep_seg
    python -m jaxtl.main --config configs/consep_seg.py --config.data.root=/data/CoNSeP \
        --config.model.init=weights/imagenet/resnet50 --workdir runs/consep_seg_in1k

Pixel classes `data.task`: 'type4' (background + other, inflammatory, epithelial,
spindle-shaped), 'type7' or 'nuclei'. Training: `consep_seg.crops_per_tile` random
`data.resolution` px crops per training tile and epoch (flips, 90-degree turns, optional
`consep_seg.stain_jitter`); `data.train_per_class` is the number of training tiles. Evaluation:
whole tiles by sliding windows (`seg.window_overlap`), Dice/IoU, AJI and PQ (README,
"Segmentation"). The `consep_seg` section and its defaults: jaxtl/data/consep/seg_spec.py; the
`seg` section: jaxtl/config/base.py.
"""

from __future__ import annotations

import ml_collections

from jaxtl.config.base import base_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    del arg
    config = base_config("consep_seg")
    config.data.resolution = 256  # training crops and inference windows (tiles: 1000 px)
    config.data.batch_size = 16
    config.eval.batch_size = 16  # windows per forward pass
    config.model.arch = "resnet50"
    config.optim.name = "adam"
    config.optim.lr = 1e-3
    config.optim.weight_decay = 0.0
    config.optim.schedule = "gradual"
    config.train.epochs = 50
    # The demo: 41 synthetic 256 px tiles (27 Train, 14 Test), ResNet18 UNet on 96 px crops.
    config.demo.arch = "resnet18"
    config.demo.resolution = 96
    config.demo.batch_size = 16
    config.demo.epochs = 6
    config.demo.num_workers = 0
    config.demo.bootstrap_samples = 200
    return config
