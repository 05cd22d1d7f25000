"""The demo sweep: does pretraining help when few labelled images are available?

    python -m jaxtl.sweep --config configs/sweeps/demo.py --workdir runs/demo --parallel 2
    python -m jaxtl.report runs/demo

EyePACS demo data (no data.root): ResNet18 at 80 px fine-tuned with 10, 30 and 100 training
images per grade, from random weights ("none") and from a run trained on another demo
population (`pretrain-demo-seed1`: 800 other synthetic patients, `demo.seed=1`, all of its
1280 training images for 2 epochs). The pretraining run goes first; the fine-tuning runs start
from its workdir. Smaller training sets get more epochs (8, 6, 3), so that every run takes
some tens of steps. Each point is trained with three seeds (`train.seed` and `data.sample_seed`
together: initialisation, augmentation, batch order and which training images are kept), so
the report shows the mean and spread over seeds and compares the sources with paired tests on
the same test images. Sized to finish within 15 minutes on 2 CPU cores with --parallel 2
(measured: 9.9 min from a fresh cache).
"""

from __future__ import annotations

from jaxtl.sweep import Sweep, axis, product, seeds

SOURCE = "pretrain-demo-seed1"
SEEDS = (0, 1, 2)


def get_sweep(arg: str | None = None) -> Sweep:
    del arg
    return Sweep(
        config="configs/eyepacs.py",
        description=__doc__.split("\n\n")[2].replace("\n", " "),
        fixed={
            "demo.batch_size": 16,
            "optim.lr": 0.01,
            "optim.warmup_epochs": 1.0,
            "train.log_every_steps": 5,
            "train.keep_checkpoints": 1,
        },
        sources={SOURCE: [{"demo.seed": 1, "demo.epochs": 2, "demo.batch_size": 32}]},
        grid=product(
            axis("model.init", ["none", f"run:{SOURCE}"]),
            [{"data.train_per_class": 10, "demo.epochs": 8},
             {"data.train_per_class": 30, "demo.epochs": 6},
             {"data.train_per_class": 100, "demo.epochs": 3}],
            seeds(SEEDS),
        ),
    )
