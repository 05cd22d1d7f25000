"""The study grid: how much does pretraining help, and when?

    python -m jaxtl.sweep --config configs/sweeps/study.py:eyepacs=/data/eyepacs,imagenet=/weights \
        --workdir runs/study --only config=eyepacs --only model.arch=resnet50 --dry-run

Axes: dataset x resolution x task x training images per class x model x head x optimizer x
learning rate x schedule x batch x pretraining x augmentation. The full product is tens of
thousands of runs: restrict it with --only (repeat a key for several values) and run slices.

The argument after `:` gives the data roots and the folder of converted ImageNet checkpoints,
as `name=path` pairs separated by commas: `eyepacs=`, `chexpert=`, `cxr14=` (dataset roots as
downloaded) and `imagenet=` (one converted checkpoint per architecture, in `<imagenet>/<arch>`,
written by tools/convert_weights). A dataset without a root runs on demo data, which replaces
the swept model, resolution and batch settings: the sweep refuses that with a message, so give
the roots of the datasets you select.

Per dataset: its tasks, its augmentations (no flips for chest X-rays: the heart is on the left)
and its pretraining sources: `none` (random init), `imagenet` (the converted checkpoint of the
same architecture) and another dataset (a run of this sweep on all labels of the other chest
X-ray dataset with the same architecture, resolution and input channels; it runs before the
runs that start from it). Optimizers come with their own learning rates: CoolMomentum's rate
is on another scale (README, "CoolMomentum"), so optimizer x learning rate is a list of pairs.
Where several runs share a point of a figure, the report shows the best validation run.
"""

from __future__ import annotations

from configs import chest_common, common
from jaxtl.sweep import Sweep, SweepError, axis, product

# dataset: (tasks, augmentations, the dataset whose run is its "other dataset" pretraining)
DATASETS = {
    "eyepacs": (["grade"], ["none", "crop,flip,rotate"], "chexpert"),
    "chexpert": (["competition5", "lung_opacity", "all"], ["none", "crop,rotate"], "cxr14"),
    "cxr14": (["all", "lung_opacity"], ["none", "crop,rotate"], "chexpert"),
}
MODELS = ["resnet50", "densenet121", "efficientnet_b0"]
RESOLUTIONS = [224, 512]
OPTIMIZERS = [
    {"optim.name": "sgd", "optim.lr": 0.01},
    {"optim.name": "sgd", "optim.lr": 0.001},
    {"optim.name": "adam", "optim.lr": 1e-3},
    {"optim.name": "adam", "optim.lr": 1e-4},
    {"optim.name": "cool_momentum", "optim.lr": 1e-4},
]
CHANNELS = [  # a pretraining run is made for the channel count of the runs that start from it
    {"data.channels": 1, "data.mean": chest_common.GREY_MEAN, "data.std": chest_common.GREY_STD},
    {"data.channels": 3, "data.mean": common.IMAGENET_MEAN, "data.std": common.IMAGENET_STD},
]
SOURCE = "{name}-all-{{model.arch}}-{{data.resolution}}px-{{data.channels}}ch"


def parse_arg(arg: str | None) -> dict[str, str]:
    """'eyepacs=/data/e,imagenet=/w' -> {'eyepacs': '/data/e', 'imagenet': '/w'}."""
    paths: dict[str, str] = {}
    for item in filter(None, (arg or "").split(",")):
        name, sep, path = item.partition("=")
        if not sep or name not in (*DATASETS, "imagenet"):
            raise SweepError(f"study.py argument {item!r}: expected name=path with a name among "
                             f"{', '.join((*DATASETS, 'imagenet'))}")
        paths[name] = path
    return paths


def get_sweep(arg: str | None = None) -> Sweep:
    paths = parse_arg(arg)

    def dataset(name: str) -> dict:
        return {"config": f"configs/{name}.py",
                **({"data.root": paths[name]} if name in paths else {})}

    imagenet = paths.get("imagenet", "weights/imagenet") + "/{model.arch}"
    per_dataset = []
    for name, (tasks, augmentations, other) in DATASETS.items():
        per_dataset += product([dataset(name)], axis("data.task", tasks),
                               axis("model.init", ["none", imagenet,
                                                   "run:" + SOURCE.format(name=other)]),
                               axis("data.augment", augmentations))
    sources = {SOURCE.format(name=name): product(
        [{**dataset(name), "data.task": "all", "data.augment": "crop,rotate"}],
        axis("model.arch", MODELS), axis("data.resolution", RESOLUTIONS), CHANNELS)
        for name in ("chexpert", "cxr14")}
    return Sweep(
        config="configs/eyepacs.py",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
        fixed={"train.epochs": 30},
        sources=sources,
        grid=product(
            per_dataset,  # dataset x task x pretraining x augmentation
            axis("data.resolution", RESOLUTIONS),
            axis("data.train_per_class", [10, 30, 100, 300, 1000, -1]),
            axis("model.arch", MODELS),
            axis("model.head", ["linear", "mlp_512_256_128_64"]),
            OPTIMIZERS,  # optimizer x learning rate
            axis("optim.schedule", ["gradual", "sudden"]),
            axis("data.batch_size", [16, 64]),
        ),
    )
