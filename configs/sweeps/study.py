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

Pretraining sources: `none` (random init), `imagenet` (the converted checkpoint of the same
architecture) and `cxr14` (a run of this sweep trained on all of ChestX-ray14 with the same
architecture and resolution; it runs before the runs that start from it).
Optimizers come with their own learning rates: CoolMomentum's rate is on another scale
(README, "CoolMomentum"), so optimizer x learning rate is a list of pairs, not a product.
Where several runs share a point of a figure, the report shows the best validation run.
"""

from __future__ import annotations

from jaxtl.sweep import Sweep, SweepError, axis, product

# Dataset x task: each entry is the config family and its task settings.
DATASETS = {
    "eyepacs": [{"config": "configs/eyepacs.py"}],
    "chexpert": [{"config": "configs/chexpert.py"}],
    "cxr14": [{"config": "configs/cxr14.py"}],
}
MODELS = ["resnet50", "densenet121", "efficientnet_b0"]
OPTIMIZERS = [
    {"optim.name": "sgd", "optim.lr": 0.01},
    {"optim.name": "sgd", "optim.lr": 0.001},
    {"optim.name": "adam", "optim.lr": 1e-3},
    {"optim.name": "adam", "optim.lr": 1e-4},
    {"optim.name": "cool_momentum", "optim.lr": 1e-4},
]
SOURCE = "cxr14-{model.arch}-{data.resolution}px"


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
    datasets = [{**entry, **({"data.root": paths[name]} if name in paths else {})}
                for name, entries in DATASETS.items() for entry in entries]
    imagenet = paths.get("imagenet", "weights/imagenet") + "/{model.arch}"
    return Sweep(
        config="configs/eyepacs.py",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
        fixed={"train.epochs": 30},
        sources={SOURCE: product(
            [{"config": "configs/cxr14.py",
              **({"data.root": paths["cxr14"]} if "cxr14" in paths else {})}],
            axis("model.arch", MODELS), axis("data.resolution", [224, 512]))},
        grid=product(
            datasets,
            axis("data.resolution", [224, 512]),
            axis("data.train_per_class", [10, 30, 100, 300, 1000, -1]),
            axis("model.arch", MODELS),
            axis("model.head", ["linear", "mlp_512_256_128_64"]),
            OPTIMIZERS,
            axis("optim.schedule", ["gradual", "sudden"]),
            axis("data.batch_size", [16, 64]),
            axis("model.init", ["none", imagenet, f"run:{SOURCE}"]),
            axis("data.augment", ["none", "crop,flip,rotate"]),
        ),
    )
