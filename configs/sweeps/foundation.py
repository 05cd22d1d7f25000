"""Does a domain foundation model beat ImageNet transfer on my data, and at which size?

    python -m jaxtl.sweep --config configs/sweeps/foundation.py:eyepacs=/data/eyepacs,weights=/pretrained \
        --workdir runs/foundation --only config=eyepacs --dry-run

An ImageNet CNN (ResNet-50), an ImageNet ViT (ViT-B/16, AugReg) and the dataset's domain
foundation model (EyePACS: RETFound, ViT-L/16; chest X-rays: RAD-DINO, ViT-B/14; CoNSeP:
Phikon, ViT-B/16), each adapted three ways: a linear probe (configs/recipes/linear_probe.py:
the backbone frozen), LoRA (rank 8 on the attention's qkv and projection of ViTs, the 1x1
convolutions of the CNN; RETFound's recipe without layer decay) and full fine-tuning
(configs/recipes/retfound.py), on 100, 1000 and 4000 training images per class, three seeds
each (`train.seed` and `data.sample_seed`). Every run trains at 224 px with its checkpoint's
mean and std (pretrained.json). The report draws the metric against training images per model
and, since the adaptations train different parts of the models, against the parameters each
run trained.

The argument after `:` gives the data roots and the folder of converted checkpoints, as
`name=path` pairs separated by commas: `eyepacs=`, `chexpert=`, `cxr14=`, `consep=` (dataset
roots as downloaded) and `weights=` (default `weights/`), which holds one converted checkpoint
per model (docs/models.md has each conversion command): `resnet50`, `vit_base_patch16_224`,
`retfound`, `rad-dino`, `phikon`.
"""

from __future__ import annotations

from jaxtl.sweep import Sweep, axis, named_paths, product, seeds

# dataset -> (domain foundation model's folder under weights/, its architecture)
DOMAIN_MODELS = {
    "eyepacs": ("retfound", "vit_large_patch16_224_avg"),
    "chexpert": ("rad-dino", "vit_base_patch14_dinov2"),
    "cxr14": ("rad-dino", "vit_base_patch14_dinov2"),
    "consep": ("phikon", "vit_base_patch16_224"),
}
IMAGENET_MODELS = {"resnet50": "resnet50", "vit_base_patch16_224": "vit_base_patch16_224"}
CNN_LORA_TARGETS = ("conv1", "conv3")  # ResNet-50's 1x1 bottleneck convolutions
SIZES = [100, 1000, 4000]
SEEDS = (0, 1, 2)


def parse_arg(arg: str | None) -> dict[str, str]:
    """'eyepacs=/data/e,...' -> {'eyepacs': '/data/e', ...}."""
    return named_paths(arg, (*DOMAIN_MODELS, "weights"), "foundation.py")


def adaptations(dataset: str, arch: str) -> list[dict]:
    """Linear probe, LoRA and full fine-tuning of `arch` on `dataset`."""
    probe = f"configs/recipes/linear_probe.py:configs/{dataset}.py"
    recipe = f"configs/recipes/retfound.py:configs/{dataset}.py"
    cnn = not arch.startswith("vit")
    depth = {"model.drop_path": 0.0} if cnn else {}  # the CNN families have no stochastic depth
    lora = {"train.adapter": "lora", "optim.layer_decay": 1.0,
            **({"lora.targets": CNN_LORA_TARGETS} if cnn else {})}
    return [{"config": probe}, {"config": recipe, **depth, **lora}, {"config": recipe, **depth}]


def get_sweep(arg: str | None = None) -> Sweep:
    paths = parse_arg(arg)
    weights = paths.get("weights", "weights")
    grid = []
    for dataset, (domain, domain_arch) in DOMAIN_MODELS.items():
        root = {"data.root": paths[dataset]} if dataset in paths else {}
        models = {**IMAGENET_MODELS, domain: domain_arch}
        for folder, arch in models.items():
            grid += product(adaptations(dataset, arch),
                            [{**root, "model.arch": arch, "model.init": f"{weights}/{folder}"}])
    return Sweep(
        config="configs/recipes/retfound.py:configs/eyepacs.py",
        description=__doc__.split("\n\n")[2].replace("\n", " "),
        fixed={},
        grid=product(grid, axis("data.train_per_class", SIZES), seeds(SEEDS)),
    )
