"""The base config: every common key jaxtl reads, declared once with its default, its rule and
what it means (`jaxtl.core.settings.Setting`).

A config file (`configs/<name>.py`, given by path) starts from `base_config(dataset)` and sets
what its experiment changes. The dataset's spec declares its own sections and its defaults of
common keys (`DatasetSpec.settings`, `DatasetSpec.defaults`: the task, the metric that selects
the best checkpoint, the demo's size, ...). Every key the code reads is declared here or there,
so a typo in an override fails instead of silently using a default;
`jaxtl.config.validation.validate` checks the values with the declared rules before anything is
compiled, and `python -m jaxtl.commands.settings` lists them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import ml_collections

from jaxtl import models, optim
from jaxtl.core.settings import (
    DTYPES,
    TOP_LEVEL,
    Section,
    Setting,
    allowing,
    ascending_epochs,
    augment_list,
    boolean,
    choice,
    epochs_from_zero,
    flat,
    number,
    positive_integers,
    positive_numbers,
    text,
    triple_of_positive,
)
from jaxtl.data import registry
from jaxtl.data.device_augment import RANDAUGMENT_EXAMPLE, randaugment_rule
from jaxtl.data.registry import DatasetSpec
from jaxtl.data.transforms import BAD_IMAGE_POLICIES
from jaxtl.metrics.segmentation import INSTANCE_METHODS
from jaxtl.models.family import IMAGENET_MEAN, IMAGENET_STD
from jaxtl.models.layers import BATCH_NORM_SCOPES
from jaxtl.models.lora import ADAPTERS, DEFAULT_TARGETS

LOSS_WEIGHTINGS = ("none", "balanced")  # train.class_weights, train.positive_weights
SEED = number(0, 2**31 - 1, integer=True)
RESOLUTION = number(16, 4096, integer=True)
POSITIVE_INTEGER = number(1, None, integer=True)
BOOTSTRAP_SAMPLES = number(0, 100_000, integer=True)
ARCHITECTURE = choice(*models.list_models())
SELECTED_WEIGHTS = ("raw", "ema")  # eval.select


@allowing("a number in 0 .. 1, 1 excluded")
def ema_decay_rule(value: Any) -> str | None:
    """train.ema_decay: 0 <= d < 1 (1 would never move the average from the initial weights)."""
    problem = number(0.0, 1.0)(value)
    if problem is None and value == 1:
        return f"is {value!r}; expected a number in 0 .. 1, 1 excluded (1 never moves the average)"
    return problem



@allowing("a non-empty tuple of layer names, e.g. ('qkv', 'proj')")
def layer_names(value: Any) -> str | None:
    if (not isinstance(value, (tuple, list)) or not value
            or not all(isinstance(v, str) and v for v in value) or len(set(value)) < len(value)):
        return f"is {value!r}; expected a non-empty tuple of distinct layer names, e.g. " \
               f"('qkv', 'proj')"
    return None


COMMON: dict[str, Section] = {
    TOP_LEVEL: {
        "dataset": Setting("", registry.dataset_rule,
                           "the dataset to read; its spec adds its sections and defaults"),
    },
    "data": {
        "root": Setting("", text, "where the dataset is (a folder or a table); empty: "
                        "synthetic demo data in the dataset's real layout (see demo)"),
        "tfds": Setting("", text, "TensorFlow Datasets (the tfds_* datasets only, "
                        "configs/tfds.py): NAME[/CONFIG] as TFDS names it"),
        "tfds_dir": Setting("", text, "TFDS's data_dir holding data.tfds prepared as "
                            "ArrayRecord (the tfds_* datasets only); empty: demo data"),
        "task": Setting("", text, "what to predict; the dataset sets its default and lists "
                        "its tasks"),
        "channels": Setting(3, number(1, 64, integer=True),
                            "input channels; data.mean and data.std have one value each"),
        "resolution": Setting(256, RESOLUTION, "square side in pixels after resizing"),
        "augment": Setting("none", augment_list,
                           "training augmentations: 'none' or a comma list of crop, flip, "
                           "rotate"),
        "crop_scale_min": Setting(0.7, number(0.05, 1.0), "'crop': smallest crop area as a "
                                  "fraction of the image"),
        "rotate_degrees": Setting(10.0, number(0.0, 180.0),
                                  "'rotate': angle drawn uniformly in +-this"),
        "randaugment": Setting("", randaugment_rule,
                               "RandAugment on the device after data.augment, as timm's "
                               "rand_augment_transform with its increasing ops: '' off, or a "
                               f"timm string such as '{RANDAUGMENT_EXAMPLE}' (m magnitude "
                               "0..10, n ops per image (2), mstd magnitude noise, mmax, p op "
                               "probability (0.5); inc1 required); 8-bit images of 1 or 3 "
                               "channels, not segmentation"),
        "random_erasing": Setting(0.0, number(0.0, 1.0),
                                  "probability of erasing one box per training image (timm's "
                                  "RandomErasing mode 'pixel': area 0.02..1/3, aspect "
                                  "0.3..3.3, normal noise after normalisation); 0 off"),
        "mean": Setting(IMAGENET_MEAN, triple_of_positive,
                        "per-channel mean, on the 0..1 scale"),
        "std": Setting(IMAGENET_STD, triple_of_positive,
                       "per-channel standard deviation, on the 0..1 scale"),
        "batch_size": Setting(64, POSITIVE_INTEGER,
                              "global batch (all devices and hosts together)"),
        "train_per_class": Setting(-1, number(1, None, integer=True, allowed_extra=(-1,)),
                                   "training images kept per class; -1 keeps all"),
        "sample_seed": Setting(0, SEED, "which images the per-class cap keeps"),
        "val_fraction": Setting(0.1, number(0.0, 0.9), "validation share of the patients, "
                                "when the dataset has no official split"),
        "test_fraction": Setting(0.1, number(0.0, 0.9), "test share of the patients, when "
                                 "the dataset has no official split"),
        "split_seed": Setting(0, SEED, "which patients go to which split"),
        "num_workers": Setting(-1, number(0, 256, integer=True, allowed_extra=(-1,)),
                               "Grain worker processes per host: -1 one per core available "
                               "to the process (fixed in config.json when a run starts); 0 "
                               "decodes in the main process"),
        "prefetch_batches": Setting(2, number(1, 64, integer=True),
                                    "batches kept ready on the device"),
        "cache_dir": Setting("", text, "demo data and index caches; empty: $JAXTL_CACHE or "
                             "~/.cache/jaxtl"),
        "prepared": Setting("", text, "a folder `python -m jaxtl.commands.prepare` wrote: "
                            "images read from its shards instead of the original files "
                            "(labels and splits still from the dataset's label files); "
                            "empty: originals"),
        "bad_images": Setting("error", choice(*BAD_IMAGE_POLICIES),
                              "an image file that cannot be read (corrupt, truncated, empty): "
                              "'error' stops the run naming it; 'skip' leaves it out "
                              "(training: a stand-in without loss; evaluation: excluded, "
                              "listed)"),
    },
    "model": {
        "arch": Setting("resnet50", ARCHITECTURE, "the architecture (python -m jaxtl.models "
                        "lists them)"),
        "head": Setting("linear", choice(*models.HEADS), "the classifier on the pooled "
                        "features"),
        "dropout": Setting(0.0, number(0.0, 0.99), "dropout rate before the head"),
        "drop_path": Setting(0.0, number(0.0, 0.99), "stochastic depth: the rate at which "
                             "the last block's residual branch is dropped per image in "
                             "training, rising linearly from 0 at the first block (timm's "
                             "drop_path_rate; vit and convnext families only)"),
        "head_init_std": Setting(0.0, number(0.0, 1.0), "the classifier's last kernel "
                                 "starts truncated normal with this standard deviation "
                                 "(MAE's and RETFound's fine-tuning: 2e-5); 0: Flax's default "
                                 "(LeCun normal)"),
        "dtype": Setting("float32", choice(*DTYPES),
                         "compute dtype; parameters stay float32"),
        "init": Setting("", text, "the weights to start from: a converted checkpoint folder "
                        "(python -m jaxtl.convert_weights.timm), hf-hub:ORG/NAME (a Hugging "
                        "Face hub model, converted once into the cache), or a jaxtl workdir "
                        "(or its checkpoint folder); empty: random. A converted checkpoint's "
                        "mean and std become data.mean and data.std unless the config sets "
                        "them"),
        "batch_norm_scope": Setting("global", choice(*BATCH_NORM_SCOPES),
                                    "what a training BatchNorm's statistics are over: "
                                    "'global', the whole batch (the same numbers on 1 or N "
                                    "devices, an all-reduce per layer and pass); 'device', "
                                    "each device's shard of it, as the flax ImageNet example "
                                    "and big_vision (the running averages are then averaged "
                                    "over the devices once per step; docs/tpu.md)"),
        "remat": Setting(False, boolean, "rematerialise each backbone block (vit and convnext "
                         "families): its activations are recomputed in the backward pass "
                         "instead of kept, less device memory for about a third more compute; "
                         "same outputs and gradients"),
    },
    "optim": {
        "name": Setting("sgd", choice(*optim.OPTIMIZERS), "the optimizer"),
        "lr": Setting(0.01, number(1e-8, 100.0), "peak learning rate for the global batch"),
        "base_lr": Setting(optim.NO_BASE_LR, number(0.0, 100.0),
                           f"the peak learning rate of a batch of {optim.BASE_BATCH}: the run's "
                           f"peak is base_lr x data.batch_size / {optim.BASE_BATCH} (the linear "
                           f"scaling of MAE's and RETFound's fine-tuning), written into optim.lr "
                           f"in the run's config.json; replaces a config file's optim.lr, and "
                           f"optim.lr given on the command line as well is refused; 0: off, "
                           f"optim.lr is the peak"),
        "momentum": Setting(0.9, number(0.0, 0.9999), "sgd: momentum"),
        "nesterov": Setting(True, boolean, "sgd: Nesterov momentum"),
        "weight_decay": Setting(1e-4, number(0.0, 1.0), "sgd, adam, cool_momentum: coupled "
                                "L2; adamw: decoupled"),
        "weight_decay_mask": Setting("kernels", choice(*optim.WEIGHT_DECAY_MASKS),
                                     "kernels: decay convolution and dense kernels only, not "
                                     "biases and normalisation scales and offsets (every "
                                     "parameter of 1 dimension), as timm's fine-tuning "
                                     "recipes do; all: every parameter"),
        "rho_0": Setting(0.99, number(0.0, 0.9999), "cool_momentum: initial momentum"),
        "alpha": Setting(0.0, number(0.0, 1.0), "cool_momentum: cooling rate; 0 derives "
                         "(1 - rho_0)^(1 / total steps)"),
        "layer_decay": Setting(optim.NO_DECAY, optim.layer_decay_rule,
                               "layer-wise lr decay (BEiT, MAE, RETFound; as timm's "
                               "param_groups_layer_decay): layer k, from the input up, trains "
                               "at lr x layer_decay^(L - k), the head being the last layer L. "
                               "ViT: the stem is layer 0, block i layer i + 1, `norm` shares "
                               "the last block's layer and `fc_norm` the head's; CNNs and "
                               "ConvNeXt: each stage (python -m jaxtl.models --stages ARCH) is "
                               "a layer, ConvNeXt's head norm shares the head's; multiplies "
                               "finetune.stage_lr_multipliers; frozen stages stay frozen; "
                               "1: off"),
        "clip_grad_norm": Setting(0.0, number(0.0, None), "clip gradients to this global "
                                  "norm; 0: no clipping"),
        "schedule": Setting("gradual", choice(*optim.SCHEDULES),
                            "flat | gradual (linear warmup, then decay) | sudden (step decay) "
                            "| triangular (cyclic) | one_cycle; durations are in epochs, "
                            "converted to steps from the training-set size and batch"),
        "warmup_epochs": Setting(1.0, number(0.0, None), "gradual: linear warmup; one_cycle: "
                                 "cosine rise to lr"),
        "gradual_decay": Setting("cosine", choice(*optim.GRADUAL_DECAYS),
                                 "gradual: the decay after the warmup"),
        "end_lr_fraction": Setting(0.0, number(0.0, 1.0), "gradual, one_cycle: final lr / lr "
                                   "(exponential: > 0)"),
        "min_lr_fraction": Setting(0.04, number(0.0, 1.0), "triangular: lowest lr / lr; "
                                   "one_cycle: first lr / lr"),
        "cycle_epochs": Setting(4.0, number(0.01, None),
                                "triangular: length of one cycle (up and down)"),
        "decay_epochs": Setting((10, 20), ascending_epochs, "sudden: epochs at which lr is "
                                "multiplied by decay_factor"),
        "decay_factor": Setting(0.1, number(0.0, 1.0), "sudden: the lr factor at each of "
                                "decay_epochs"),
    },
    "finetune": {  # stages per architecture: python -m jaxtl.models --stages ARCH
        "strategy": Setting("full", choice(*optim.STRATEGIES),
                            "which backbone stages train: full | linear_probe | "
                            "freeze_stages | gradual_unfreeze"),
        "freeze_stages": Setting(0, number(0, None, integer=True),
                                 "freeze_stages: how many stages, from the input up"),
        "unfreeze_epochs": Setting((), epochs_from_zero, "gradual_unfreeze: the epoch at "
                                   "which each stage starts training, the last stage first"),
        "stage_lr_multipliers": Setting((), positive_numbers, "lr factor per stage from the "
                                        "input up; () all 1"),
    },
    "train": {
        "epochs": Setting(30, POSITIVE_INTEGER,
                          "the most epochs; early stopping may end the run sooner"),
        "early_stopping_patience": Setting(0, number(0, None, integer=True),
                                           "stop after this many epochs without improving; "
                                           "0 off"),
        "early_stopping_min_delta": Setting(0.0, number(0.0, None),
                                            "smallest rise of eval.best_metric that counts"),
        "label_smoothing": Setting(0.0, number(0.0, 0.99), "softmax targets (1 - s) one-hot "
                                   "+ s / classes; binary targets (1 - s) y + s / 2"),
        "eval_every_epochs": Setting(1, POSITIVE_INTEGER, "validate every N epochs"),
        "checkpoint_every_epochs": Setting(1, POSITIVE_INTEGER, "save every N epochs"),
        "checkpoint_every_steps": Setting(0, number(0, None, integer=True),
                                          "also save every N steps (0: off), whatever the "
                                          "epoch length: what a kill -9 or a crash can lose; "
                                          "SIGTERM (preemption) always saves at the next step"),
        "checkpoint_every_minutes": Setting(0.0, number(0.0, None),
                                            "also save every M minutes (0: off)"),
        "keep_checkpoints": Setting(2, POSITIVE_INTEGER, "latest checkpoints kept for "
                                    "resuming; the best is kept apart"),
        "keep_last_checkpoint": Setting(False, boolean, "keep the latest checkpoints "
                                        "(checkpoints/: optimizer state, input position) when "
                                        "the run finishes; off, a finished run keeps best/ "
                                        "(the model's variables), predictions and results"),
        "log_every_steps": Setting(50, POSITIVE_INTEGER, "log the training loss every N "
                                   "steps"),
        "seed": Setting(0, SEED, "parameter init, dropout and augmentation"),
        "class_weights": Setting("none", choice(*LOSS_WEIGHTINGS),
                                 "class imbalance of softmax tasks, from the training labels "
                                 "(evaluation is never weighted): none | balanced "
                                 "(n / (classes * n_c))"),
        "positive_weights": Setting("none", choice(*LOSS_WEIGHTINGS),
                                    "class imbalance of multi-label tasks: none | balanced "
                                    "(negatives / positives)"),
        "mixup_alpha": Setting(0.0, number(0.0, None),
                               "mixup: lam ~ Beta(alpha, alpha) per batch, each image and "
                               "target mixed with the flipped batch's (timm's Mixup, mode "
                               "'batch'; label smoothing as train.label_smoothing); 0 off"),
        "cutmix_alpha": Setting(0.0, number(0.0, None),
                                "cutmix: lam ~ Beta(alpha, alpha) per batch, a box of the "
                                "flipped batch pasted in, targets mixed by its area; 0 off"),
        "mixup_prob": Setting(1.0, number(0.0, 1.0),
                              "probability that a batch is mixed (mixup or cutmix)"),
        "mixup_switch_prob": Setting(0.5, number(0.0, 1.0),
                                     "with both alphas above 0: probability of cutmix rather "
                                     "than mixup for a batch"),
        "ema_decay": Setting(0.0, ema_decay_rule, "exponential moving average of the parameters, "
                             "ema = d ema + (1 - d) params after every optimizer step (0: off); "
                             "the EMA model uses the raw model's BatchNorm statistics; "
                             "evaluated beside the raw weights (metrics.jsonl ema_*), saved in "
                             "the checkpoints; eval.select picks which one is kept as best"),
        "accumulation_steps": Setting(1, POSITIVE_INTEGER, "gradient accumulation: each "
                                      "update splits data.batch_size into this many "
                                      "micro-batches run one after the other (less device "
                                      "memory) and updates once with the whole batch's "
                                      "gradient; BatchNorm statistics are then per "
                                      "micro-batch; data.batch_size must be a multiple of "
                                      "this x the devices; classification only"),
        "adapter": Setting("none", choice(*ADAPTERS), "none: the fine-tuning strategy trains "
                           "the model's own parameters; lora: low-rank adapters on the layers "
                           "lora.targets names train with the head, the rest of model.init's "
                           "backbone stays frozen (needs model.init and finetune.strategy=full)"),
    },
    "lora": {  # train.adapter=lora only (docs/fine-tuning.md, "LoRA")
        "rank": Setting(8, POSITIVE_INTEGER, "rank r of each adapter: A (in, r), B (r, out)"),
        "alpha": Setting(16.0, number(1e-8, None), "the adapters' output is scaled by "
                         "alpha / rank"),
        "dropout": Setting(0.0, number(0.0, 0.99), "dropout on the adapters' input in "
                           "training"),
        "targets": Setting(DEFAULT_TARGETS, layer_names, "names of the backbone layers that "
                           "get adapters (Dense layers and 1x1 convolutions): a ViT's "
                           "attention ('qkv', 'proj'), its MLP ('fc1', 'fc2'); a CNN's 1x1 "
                           "convolutions by name (e.g. ResNet's 'conv1', 'conv3', "
                           "'downsample_conv')"),
    },
    "eval": {
        "batch_size": Setting(64, POSITIVE_INTEGER, "global evaluation batch"),
        "best_metric": Setting("", text, "validation metric that selects the best checkpoint "
                               "(the dataset's metrics)"),
        "bootstrap_samples": Setting(1000, BOOTSTRAP_SAMPLES,
                                     "patient resamples for the 95% CIs of final metrics"),
        "bootstrap_seed": Setting(0, SEED, "which resamples"),
        "select": Setting("raw", choice(*SELECTED_WEIGHTS), "with train.ema_decay > 0: "
                          "whose validation metric selects the best checkpoint (and early "
                          "stopping), and so which weights best/ keeps and the final val and "
                          "test use: raw | ema (the moving average)"),
        "temperature_scaling": Setting(True, boolean, "classification: fit one temperature "
                                       "per task head on the validation logits (minimum "
                                       "log-loss; Guo et al. 2017), report val and test "
                                       "calibrated_loss/ece/brier after scaling and the "
                                       "temperatures (results.json `calibration`); saved "
                                       "scores and every other metric stay unscaled"),
    },
    "probe": {  # python -m jaxtl.commands.features: logistic regression on pooled features
        "c_values": Setting((0.001, 0.01, 0.1, 1.0, 10.0), positive_numbers,
                            "features: inverse L2 strengths; validation picks one"),
        "max_iter": Setting(1000, POSITIVE_INTEGER, "features: L-BFGS iterations per fit"),
    },
    "seg": {  # segmentation datasets only (consep_seg): the UNet, its loss, whole tiles
        "decoder_channels": Setting((256, 128, 64, 32, 16), positive_integers,
                                    "UNet decoder widths, deepest level up"),
        "ce_weight": Setting(1.0, number(0.0, None), "loss = ce_weight x cross-entropy + "
                             "dice_weight x soft Dice loss"),
        "dice_weight": Setting(1.0, number(0.0, None), "see seg.ce_weight"),
        "window_overlap": Setting(0.5, number(0.0, 0.9), "whole tiles are predicted in "
                                  "windows of data.resolution px overlapping by this fraction "
                                  "of a window, blended with weights falling towards the "
                                  "edges"),
        "instances": Setting("watershed", choice(*INSTANCE_METHODS),
                             "nuclei from the predicted mask"),
        "overlay_tiles": Setting(4, number(0, None, integer=True), "test tiles drawn with "
                                 "their predicted masks in the run folder"),
    },
    # What a demo run (no data: its location key empty) changes so that it finishes in minutes
    # on a 2-core CPU. 80 px is the fastest ResNet18 resolution on XLA:CPU here
    # (benchmarks/README.md): 64 px puts 2x2 maps into layer4 and 112+ px large maps into
    # layer1, both of which hit slow CPU convolutions.
    "demo": {
        "seed": Setting(0, SEED, "the demo data's seed"),
        "num_patients": Setting(800, number(10, None, integer=True),
                                "patients (or tiles, patches) of the demo data"),
        "image_size": Setting(128, RESOLUTION, "side of the written demo images"),
        "arch": Setting("resnet18", ARCHITECTURE, "model.arch of a demo run"),
        "resolution": Setting(80, RESOLUTION, "data.resolution of a demo run"),
        "batch_size": Setting(32, POSITIVE_INTEGER, "data.batch_size of a demo run"),
        "epochs": Setting(4, POSITIVE_INTEGER, "train.epochs of a demo run"),
        "num_workers": Setting(0, number(0, 256, integer=True), "data.num_workers of a demo "
                               "run: decoding 128 px JPEGs inline beats worker processes on "
                               "2 cores"),
        "bootstrap_samples": Setting(200, BOOTSTRAP_SAMPLES, "eval.bootstrap_samples of a "
                                     "demo run: CIs of the small demo splits in seconds"),
    },
}


def declared(spec: DatasetSpec) -> dict[str, Section]:
    """Every section of `spec`'s config with its settings: the common ones, where the dataset
    declares a common key anew (its tasks) in its place, then the dataset's own sections."""
    sections = {name: dict(keys) for name, keys in COMMON.items()}
    metric = sections["eval"]["best_metric"]  # checked against spec.metrics by validate
    sections["eval"]["best_metric"] = dataclasses.replace(
        metric, rule=allowing(f"one of {', '.join(spec.metrics)}")(metric.rule))
    for name, keys in spec.settings.items():
        sections.setdefault(name, {}).update(keys)
    return sections


def settings_of(spec: DatasetSpec) -> dict[str, Setting]:
    """'section.key' -> its setting, for every key of `spec`'s config."""
    return flat(declared(spec))


def base_config(dataset: str, spec: DatasetSpec | None = None) -> ml_collections.ConfigDict:
    """The defaults of every key for `dataset` (a name `jaxtl.data.registry.get` accepts;
    `spec`: its spec, when the caller has it)."""
    spec = spec or registry.get(dataset)
    config = ml_collections.ConfigDict()
    for section, keys in declared(spec).items():
        node = config
        if section != TOP_LEVEL:
            config[section] = ml_collections.ConfigDict()
            node = config[section]
        for key, setting in keys.items():
            node[key] = setting.default
    config.dataset = dataset
    _set_defaults(config, spec.defaults)
    return config


def flatten(config: Mapping[str, Any] | ml_collections.ConfigDict,
            prefix: str = "") -> Iterator[tuple[str, Any]]:
    """('section.key', value) for every leaf."""
    for key, value in config.items():
        if isinstance(value, (Mapping, ml_collections.ConfigDict)):
            yield from flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _set_defaults(config: ml_collections.ConfigDict, defaults: Mapping[str, object]) -> None:
    for dotted, value in defaults.items():
        section, key = dotted.split(".")
        config[section][key] = value
