"""The segmentation demo sweep: does a CoNSeP patch classifier help a UNet with few tiles?

    python -m jaxtl.sweep --config configs/sweeps/segmentation_demo.py --workdir runs/seg-demo
    python -m jaxtl.report runs/seg-demo

CoNSeP demo data (no data.root): a ResNet18 UNet on 96 px crops trained on 3 and on all 24
training tiles, from random weights ("none") and from a ResNet18 patch classifier of the 7
nucleus types trained on the demo's Train/ tiles (`patches-demo`: the consep demo run, its
32 px patches); the report plots test nuclei Dice and PQ against training tiles and shows the
predicted masks. One seed per point.
"""

from __future__ import annotations

from jaxtl.sweep import Sweep, axis, product

SOURCE = "patches-demo"


def get_sweep(arg: str | None = None) -> Sweep:
    del arg
    return Sweep(
        config="configs/consep_seg.py",
        description=__doc__.split("\n\n")[2].replace("\n", " "),
        fixed={"train.log_every_steps": 5, "train.keep_checkpoints": 1},
        sources={SOURCE: [{"config": "configs/consep.py"}]},
        grid=product(axis("model.init", ["none", f"run:{SOURCE}"]),
                     axis("data.train_per_class", [3, 24])),
    )
