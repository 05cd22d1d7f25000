"""Linear probing as MAE's protocol does it (He et al. 2022, `main_linprobe.py`), for any
dataset: the backbone frozen, only the classifier trained.

    python -m jaxtl.main --config configs/recipes/linear_probe.py:configs/eyepacs.py \
        --workdir runs/probe --config.data.root=/data/eyepacs \
        --config.model.arch=vit_large_patch16_224_avg --config.model.init=pretrained/retfound

Base rate 0.1 x batch / 256, no weight decay, 10 warmup epochs then a cosine over 90 epochs,
random crops (area 0.08-1) and flips, a linear head initialised with std 0.01. Differences from
MAE's: SGD with momentum 0.9 instead of LARS (jaxtl has no LARS; on one device's batch the
two behave alike), batch 512 instead of 16,384, and no parameter-free BatchNorm before the
head. A linear probe on pooled features without any augmentation is
`python -m jaxtl.commands.features` (logistic regression, docs/fine-tuning.md).
"""

from __future__ import annotations

import ml_collections

from jaxtl.config.recipes import recipe_config

SETTINGS = {
    "data.resolution": 224,
    "data.batch_size": 512,
    "data.augment": "crop,flip",
    "data.crop_scale_min": 0.08,
    "finetune.strategy": "linear_probe",
    "model.head": "linear",
    "model.head_init_std": 0.01,
    "optim.name": "sgd",
    "optim.momentum": 0.9,
    "optim.nesterov": False,
    "optim.base_lr": 0.1,
    "optim.weight_decay": 0.0,
    "optim.schedule": "gradual",
    "optim.gradual_decay": "cosine",
    "optim.warmup_epochs": 10.0,
    "optim.end_lr_fraction": 0.0,
    "train.epochs": 90,
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return recipe_config("linear_probe", arg, SETTINGS)
