"""RETFound's published fine-tuning (Zhou et al. 2023, `main_finetune.py` and the README's
commands), for any dataset:

    python -m jaxtl.main --config configs/recipes/retfound.py:configs/eyepacs.py \
        --workdir runs/retfound --config.data.root=/data/eyepacs \
        --config.model.arch=vit_large_patch16_224_avg --config.model.init=pretrained/retfound

AdamW (weight decay 0.05) at base rate 5e-3 x batch / 256, layer-wise rate decay 0.65, 10 warmup
epochs then a cosine to 1e-6 over 50 epochs at batch 16 (`end_lr_fraction`: 1e-6 over the peak
at that batch), stochastic depth 0.2, label smoothing 0.1, RandAugment rand-m9-mstd0.5-inc1,
random erasing 0.25, mixup and cutmix off, the head initialised with std 2e-5, 224 px.
Augmentation: RETFound's is timm's RandomResizedCrop (area 0.08-1, aspect 3/4-4/3) and a
horizontal flip; jaxtl's crop is square (area 0.08-1). RETFound picks the best epoch by
validation AUROC; jaxtl keeps the dataset's `eval.best_metric`. The model and its weights
come from the command line (`model.arch`, `model.init`; RETFound's MAE file converted as
docs/models.md shows).
"""

from __future__ import annotations

import ml_collections

from jaxtl.config.recipes import recipe_config

SETTINGS = {
    "data.resolution": 224,
    "data.batch_size": 16,
    "data.augment": "crop,flip",
    "data.crop_scale_min": 0.08,
    "data.randaugment": "rand-m9-mstd0.5-inc1",
    "data.random_erasing": 0.25,
    "optim.name": "adamw",
    "optim.base_lr": 5e-3,
    "optim.weight_decay": 0.05,
    "optim.layer_decay": 0.65,
    "optim.schedule": "gradual",
    "optim.gradual_decay": "cosine",
    "optim.warmup_epochs": 10.0,
    "optim.end_lr_fraction": 1e-6 / (5e-3 * 16 / 256),
    "train.epochs": 50,
    "train.label_smoothing": 0.1,
    "train.mixup_alpha": 0.0,
    "train.cutmix_alpha": 0.0,
    "model.drop_path": 0.2,
    "model.head_init_std": 2e-5,
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return recipe_config("retfound", arg, SETTINGS)
