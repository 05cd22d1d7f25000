"""The study grid: how much does pretraining help, and when?

    python -m jaxtl.sweep --config configs/sweeps/study.py:eyepacs=/data/eyepacs,imagenet=/weights \
        --workdir runs/study --only config=eyepacs --only model.arch=resnet50 --dry-run

Axes: dataset x resolution x task x training images per class x model x head x optimizer x
learning rate x schedule x batch x pretraining x augmentation, with the study's values
(256/512 px radiographs and fundus photographs; 100/1000/4000/16000 images per class; VGG16,
ResNet50, EfficientNet-B5, DenseNet201, InceptionV3, NF-ResNet50 and BiT-M R50x1; the three
heads; SGD, Adam, CoolMomentum over learning rates 0.1..0.0001; flat, gradual and sudden
schedules; batch 16/64), plus CoNSeP nuclei segmentation: UNets on the same encoders, trained on
3/6/12/24 tiles from random weights, ImageNet or a CoNSeP patch classifier. The full product is hundreds of thousands of runs: restrict it with
--only (repeat a key for several values) and run slices.

The argument after `:` gives the data roots and the folder of converted ImageNet checkpoints,
as `name=path` pairs separated by commas: `eyepacs=`, `chexpert=`, `cxr14=`, `consep=`,
`bigearthnet=` (dataset roots as downloaded) and `imagenet=` (one converted checkpoint per
architecture, in `<imagenet>/<arch>`, written by tools/convert_weights). A dataset without a
root runs on demo data, which replaces the swept model, resolution and batch settings: the
sweep refuses that with a message, so give the roots of the datasets you select.

Per dataset: its tasks (chest X-rays: one label, a list of other labels, all, hierarchical),
its resolutions (CoNSeP's 32 px patches upsampled 3x and 4x; BigEarthNet at its 120 px grid),
its augmentations (no flips for chest X-rays: the heart is on the left), its own axes (CoNSeP's
random against tile-held-out split) and its pretraining sources: `none` (random init),
`imagenet` (the converted checkpoint of the same architecture; the first convolution adapted
to 1 or 10 channels) and, for the chest X-ray datasets, the other one (a run of this sweep on
all labels of the other chest X-ray dataset with the same architecture, resolution and input
channels; it runs before the runs that start from it). Optimizers come with their own learning
rates: CoolMomentum's rate is on another scale (README, "CoolMomentum"), so optimizer x
learning rate is a list of pairs. Where several runs share a point of a figure, the report
shows the best validation run.
"""

from __future__ import annotations

from typing import NamedTuple

from jaxtl.data.chest.spec import GREY_MEAN, GREY_STD
from jaxtl.models.family import IMAGENET_MEAN, IMAGENET_STD
from jaxtl.sweep import Sweep, axis, named_paths, product


class DatasetAxes(NamedTuple):
    tasks: list[str]
    resolutions: list[int]
    augmentations: list[str]
    other: str = ""  # the dataset whose run is this one's "other dataset" pretraining
    extra: list[dict] = [{}]  # the dataset's own axes


RADIOGRAPH_RESOLUTIONS = [256, 512]
CHEST_TASKS = ["lung_opacity", "competition5", "all", "hierarchical"]
DATASETS = {
    "eyepacs": DatasetAxes(["grade"], RADIOGRAPH_RESOLUTIONS,
                           ["none", "crop", "flip", "rotate", "crop,flip,rotate"], other="chexpert"),
    "chexpert": DatasetAxes(CHEST_TASKS, RADIOGRAPH_RESOLUTIONS,
                            ["none", "crop", "rotate", "crop,rotate"], other="cxr14"),
    "cxr14": DatasetAxes(CHEST_TASKS, RADIOGRAPH_RESOLUTIONS,
                         ["none", "crop", "rotate", "crop,rotate"], other="chexpert"),
    "consep": DatasetAxes(["type7", "type4"], [96, 128], ["none", "flip,rotate"],
                          extra=axis("consep.split", ["random", "tiles"])),
    "bigearthnet": DatasetAxes(["labels19"], [120], ["none", "flip,rotate"]),
}
MODELS = ["vgg16", "resnet50", "tf_efficientnet_b5", "densenet201", "inception_v3",
          "nf_resnet50", "resnetv2_50x1_bit"]
OPTIMIZERS = [
    *({"optim.name": "sgd", "optim.lr": lr} for lr in (0.1, 0.01, 0.001, 0.0001)),
    *({"optim.name": "adam", "optim.lr": lr} for lr in (0.001, 0.0001)),
    *({"optim.name": "cool_momentum", "optim.lr": lr} for lr in (0.01, 0.001)),
]
CHANNELS = [  # a pretraining run is made for the channel count of the runs that start from it
    {"data.channels": 1, "data.mean": GREY_MEAN, "data.std": GREY_STD},
    {"data.channels": 3, "data.mean": IMAGENET_MEAN, "data.std": IMAGENET_STD},
]
SOURCE = "{name}-all-{{model.arch}}-{{data.resolution}}px-{{data.channels}}ch"
# Segmentation (consep_seg, the CoNSeP download): UNets on every family's encoder, trained on
# 3..24 of the 24 Train tiles left after validation, from random weights, ImageNet, or ImageNet
# then a CoNSeP patch classifier (the 7 types, Train tiles only: Test/ stays unseen).
SEGMENTATION_TILES = [3, 6, 12, 24]
PATCH_SOURCE = "consep-types-{model.arch}"


def parse_arg(arg: str | None) -> dict[str, str]:
    """'eyepacs=/data/e,...' -> {'eyepacs': '/data/e', ...}."""
    return named_paths(arg, (*DATASETS, "imagenet"), "study.py")


def get_sweep(arg: str | None = None) -> Sweep:
    paths = parse_arg(arg)

    def dataset(name: str) -> dict:
        return {"config": f"configs/{name}.py",
                **({"data.root": paths[name]} if name in paths else {})}

    imagenet = paths.get("imagenet", "weights/imagenet") + "/{model.arch}"
    per_dataset = []
    for name, axes in DATASETS.items():
        inits = ["none", imagenet] + (["run:" + SOURCE.format(name=axes.other)]
                                      if axes.other else [])
        per_dataset += product([dataset(name)], axis("data.task", axes.tasks),
                               axis("data.resolution", axes.resolutions), axes.extra,
                               axis("model.init", inits), axis("data.augment", axes.augmentations))
    sources = {SOURCE.format(name=name): product(
        [{**dataset(name), "data.task": "all", "data.augment": "crop,rotate"}],
        axis("model.arch", MODELS), axis("data.resolution", RADIOGRAPH_RESOLUTIONS), CHANNELS)
        for name in ("chexpert", "cxr14")}
    sources[PATCH_SOURCE] = product(
        [{**dataset("consep"), "data.task": "type7", "data.resolution": 128,
          "data.augment": "flip,rotate", "consep.split": "tiles", "model.init": imagenet}],
        axis("model.arch", MODELS))
    segmentation = product(
        [{"config": "configs/consep_seg.py", "train.epochs": 50,
          **({"data.root": paths["consep"]} if "consep" in paths else {})}],
        axis("model.init", ["none", imagenet, "run:" + PATCH_SOURCE]),
        axis("data.train_per_class", SEGMENTATION_TILES), axis("model.arch", MODELS))
    return Sweep(
        config="configs/eyepacs.py",
        description=__doc__.split("\n\n")[2].replace("\n", " "),
        fixed={"train.epochs": 30},
        sources=sources,
        grid=product(
            per_dataset,  # dataset x task x resolution x pretraining x augmentation
            axis("data.train_per_class", [100, 1000, 4000, 16000]),
            axis("model.arch", MODELS),
            axis("model.head", ["linear", "mlp_128", "mlp_512_256_128_64"]),
            OPTIMIZERS,  # optimizer x learning rate
            axis("optim.schedule", ["flat", "gradual", "sudden"]),
            axis("data.batch_size", [16, 64]),
        ) + segmentation,  # training tiles x pretraining source x encoder
    )
