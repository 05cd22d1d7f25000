"""BigEarthNet-S2 v1.0: multi-label land cover (19-class nomenclature) from Sentinel-2 bands.

    python -m jaxtl.main --config configs/bigearthnet.py --workdir runs/bigearthnet
    python -m jaxtl.main --config configs/bigearthnet.py --config.data.root=/data/BigEarthNet-v1.0 \\
        --config.bigearthnet.split_dir=/data/bigearthnet-splits ...
    python -m jaxtl.main --config configs/bigearthnet.py:all ...     # all 12 bands

The argument after ':' selects the bands (default '10m20m': the 10 m and 20 m bands, 20 m ones
upsampled to 120x120; 'all': 12 bands; '10m'; 'rgb'; or a comma list such as B04,B03,B02) and
sets data.channels, data.mean and data.std to the published per-band statistics of those
bands. To normalise with statistics of the training split instead, measure them with
`python -m jaxtl.commands.channel_stats --config configs/bigearthnet.py` and pass the printed flags.
The `bigearthnet` section and the data defaults: jaxtl/data/bigearthnet/spec.py.
"""

from __future__ import annotations

import ml_collections

from jaxtl.config.base import base_config
from jaxtl.data.bigearthnet.spec import select_bands


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = base_config("bigearthnet")
    if arg:
        select_bands(config, arg)
    settings(config)
    return config


def settings(config: ml_collections.ConfigDict) -> None:
    """The experiment's settings (configs/tfds.py takes them for TFDS's bigearthnet)."""
    config.data.resolution = 120  # the 10 m grid of a patch
    config.data.batch_size = 128
    config.eval.batch_size = 256

    # Sumbul et al. (2021) train ResNet-50 from scratch with Adam.
    config.model.arch = "resnet50"
    config.optim.name = "adam"
    config.optim.lr = 1e-3
    config.optim.weight_decay = 0.0
    config.optim.schedule = "gradual"
    config.train.epochs = 30

    # The demo: 1,000 synthetic patches in the archive's layout, ResNet18 at 80 px (on XLA:CPU
    # faster than 64 px, whose 2x2 maps in layer4 are slow: benchmarks/README.md).
    config.demo.arch = "resnet18"
    config.demo.resolution = 80
    config.demo.batch_size = 32
    config.demo.epochs = 4
    config.demo.num_workers = 0
