"""The base config: every key jaxtl reads, with its default and what it means.

A config file (`configs/<name>.py`, given by path) starts from `base_config(dataset)` and sets
what its experiment changes. The dataset's package adds its own section and its defaults
(`DatasetSpec.add_config`: the task, the metric that selects the best checkpoint, the demo's
size, ...). Every key the code reads is defined here or there, so a typo in an override fails
instead of silently using a default; `jaxtl.config.validation.validate` checks the values before
anything is compiled.
"""

from __future__ import annotations

import ml_collections

from jaxtl.data import registry
from jaxtl.models.family import IMAGENET_MEAN, IMAGENET_STD


def base_config(dataset: str) -> ml_collections.ConfigDict:
    """The defaults of every key for `dataset` (a name `jaxtl.data.registry.get` accepts)."""
    config = ml_collections.ConfigDict()
    config.dataset = dataset  # built-in name, or '<module>[:<name>]' of a dataset package

    config.data = ml_collections.ConfigDict()
    config.data.root = ""  # empty: synthetic demo data in the dataset's real layout (see `demo`)
    # TensorFlow Datasets (the tfds_* datasets only, configs/tfds.py): NAME[/CONFIG] as TFDS
    # names it, and TFDS's data_dir holding it prepared as ArrayRecord (empty: demo data).
    config.data.tfds = ""
    config.data.tfds_dir = ""
    config.data.task = ""  # what to predict; the dataset sets its default and lists its tasks
    config.data.channels = 3  # input channels; data.mean and data.std have one value each
    config.data.resolution = 256  # square side in pixels after resizing
    config.data.augment = "none"  # 'none' or a comma list of crop, flip, rotate
    config.data.crop_scale_min = 0.7  # 'crop': smallest crop area as a fraction of the image
    config.data.rotate_degrees = 10.0  # 'rotate': angle drawn uniformly in +-this
    config.data.mean = IMAGENET_MEAN  # per channel, on the 0..1 scale
    config.data.std = IMAGENET_STD
    config.data.batch_size = 64  # global batch (all devices and hosts together)
    config.data.train_per_class = -1  # training images kept per class; -1 keeps all
    config.data.sample_seed = 0  # which images the per-class cap keeps
    config.data.val_fraction = 0.1  # of patients, when the dataset has no official split
    config.data.test_fraction = 0.1
    config.data.split_seed = 0
    # Grain worker processes per host: -1 one per core available to the process
    # (os.sched_getaffinity, fixed in config.json when a run starts); 0 decodes in the main process
    config.data.num_workers = -1
    config.data.prefetch_batches = 2  # batches kept ready on the device
    # A folder `python -m jaxtl.commands.prepare` wrote: images read from its shards instead of the
    # original files (labels and splits still from the dataset's label files); empty: originals
    config.data.prepared = ""
    config.data.cache_dir = ""  # demo data and index caches; empty: $JAXTL_CACHE or ~/.cache/jaxtl
    # An image file that cannot be read (corrupt, truncated, empty): 'error' stops the run naming
    # it; 'skip' leaves it out (training: a stand-in without loss; evaluation: excluded, listed).
    config.data.bad_images = "error"

    config.model = ml_collections.ConfigDict()
    config.model.arch = "resnet50"
    config.model.head = "linear"  # linear | mlp_128 | mlp_512_256_128_64
    config.model.dropout = 0.0
    config.model.dtype = "float32"  # compute dtype; parameters stay float32
    config.model.init = ""  # a jaxtl workdir (or its checkpoint folder) to start from; empty: random

    config.optim = ml_collections.ConfigDict()
    config.optim.name = "sgd"  # sgd | adam | adamw | cool_momentum
    config.optim.lr = 0.01  # peak learning rate for the global batch
    config.optim.momentum = 0.9  # sgd
    config.optim.nesterov = True  # sgd
    config.optim.weight_decay = 1e-4  # sgd, adam, cool_momentum: coupled L2; adamw: decoupled
    # kernels: decay convolution and dense kernels only, not biases and normalisation scales and
    # offsets (every parameter of 1 dimension), as timm's fine-tuning recipes do | all
    config.optim.weight_decay_mask = "kernels"
    config.optim.rho_0 = 0.99  # cool_momentum: initial momentum
    config.optim.alpha = 0.0  # cool_momentum: cooling rate; 0 derives (1 - rho_0)^(1 / total steps)
    config.optim.clip_grad_norm = 0.0  # clip gradients to this global norm; 0: no clipping
    # flat | gradual (linear warmup, then decay) | sudden (step decay) | triangular (cyclic) |
    # one_cycle. Durations are in epochs, converted to steps from the training-set size and batch.
    config.optim.schedule = "gradual"
    config.optim.warmup_epochs = 1.0  # gradual: linear warmup; one_cycle: cosine rise to lr
    config.optim.gradual_decay = "cosine"  # gradual: cosine | exponential
    config.optim.end_lr_fraction = 0.0  # gradual, one_cycle: final lr / lr (exponential: > 0)
    config.optim.min_lr_fraction = 0.04  # triangular: lowest lr / lr; one_cycle: first lr / lr
    config.optim.cycle_epochs = 4.0  # triangular: length of one cycle (up and down)
    config.optim.decay_epochs = (10, 20)  # sudden: epochs at which lr is multiplied by decay_factor
    config.optim.decay_factor = 0.1  # sudden

    # Which backbone stages train (stages per architecture: python -m jaxtl.models --stages ARCH)
    config.finetune = ml_collections.ConfigDict()
    config.finetune.strategy = "full"  # full | linear_probe | freeze_stages | gradual_unfreeze
    config.finetune.freeze_stages = 0  # freeze_stages: how many stages, from the input up
    # gradual_unfreeze: the epoch at which each stage starts training, the last stage first
    config.finetune.unfreeze_epochs = ()
    config.finetune.stage_lr_multipliers = ()  # lr factor per stage from the input up; () all 1

    config.train = ml_collections.ConfigDict()
    config.train.epochs = 30  # the most epochs; early stopping may end the run sooner
    config.train.early_stopping_patience = 0  # stop after this many epochs without improving; 0 off
    config.train.early_stopping_min_delta = 0.0  # smallest rise of eval.best_metric that counts
    # softmax targets (1 - s) one-hot + s / classes; binary targets (1 - s) y + s / 2
    config.train.label_smoothing = 0.0
    config.train.eval_every_epochs = 1
    config.train.checkpoint_every_epochs = 1
    # Also save every N steps and/or every M minutes (0: off), whatever the epoch length: what
    # a kill -9 or a crash can lose. SIGTERM (preemption) always saves at the next step.
    config.train.checkpoint_every_steps = 0
    config.train.checkpoint_every_minutes = 0.0
    config.train.keep_checkpoints = 2  # latest checkpoints kept for resuming; the best is kept apart
    config.train.log_every_steps = 50
    config.train.seed = 0  # parameter init, dropout and augmentation
    # Class imbalance, from the training labels (evaluation is never weighted):
    config.train.class_weights = "none"  # softmax tasks: none | balanced (n / (classes * n_c))
    config.train.positive_weights = "none"  # multi-label: none | balanced (negatives / positives)

    config.eval = ml_collections.ConfigDict()
    config.eval.batch_size = 64  # global
    config.eval.best_metric = ""  # validation metric that selects the best checkpoint (dataset's)
    config.eval.bootstrap_samples = 1000  # patient resamples for the 95% CIs of final metrics
    config.eval.bootstrap_seed = 0

    # python -m jaxtl.commands.features: logistic regression on pooled backbone features
    config.probe = ml_collections.ConfigDict()
    config.probe.c_values = (0.001, 0.01, 0.1, 1.0, 10.0)  # inverse L2 strengths; val picks one
    config.probe.max_iter = 1000  # L-BFGS iterations per fit

    # Segmentation datasets only (consep_seg): the UNet, its loss and whole-tile inference
    config.seg = ml_collections.ConfigDict()
    config.seg.decoder_channels = (256, 128, 64, 32, 16)  # UNet decoder widths, deepest level up
    config.seg.ce_weight = 1.0  # loss = ce_weight x cross-entropy + dice_weight x soft Dice loss
    config.seg.dice_weight = 1.0
    # Whole tiles are predicted in windows of data.resolution px overlapping by this fraction
    # of a window, their class probabilities blended with weights falling towards the edges.
    config.seg.window_overlap = 0.5
    config.seg.instances = "watershed"  # nuclei from the mask: watershed | components
    config.seg.overlay_tiles = 4  # test tiles drawn with their predicted masks in the run folder

    config.demo = ml_collections.ConfigDict()  # used only when data.root is empty
    config.demo.seed = 0
    config.demo.num_patients = 800
    config.demo.image_size = 128  # side of the written demo images
    # What the demo run changes so that it finishes in minutes on a 2-core CPU. 80 px is the
    # fastest ResNet18 resolution on XLA:CPU here (benchmarks/README.md): 64 px puts 2x2 maps
    # into layer4 and 112+ px large maps into layer1, both of which hit slow CPU convolutions.
    config.demo.arch = "resnet18"
    config.demo.resolution = 80
    config.demo.batch_size = 32
    config.demo.epochs = 4
    config.demo.num_workers = 0  # decoding 128 px JPEGs inline beats worker processes on 2 cores
    config.demo.bootstrap_samples = 200  # CIs of the small demo splits in seconds, not minutes
    registry.get(dataset).add_config(config)
    return config
