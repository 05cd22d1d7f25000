"""CheXpert and ChestX-ray14 in jaxtl: the shared `chest` config section, rules and checks, and
one DatasetSpec per dataset."""

from __future__ import annotations

import pathlib

import ml_collections

from jaxtl.core.settings import choice
from jaxtl.data.chest import bbox, demo, reader
from jaxtl.data.chest import labels as chest_labels
from jaxtl.data.records import DatasetSplits
from jaxtl.data.registry import DatasetSpec

GREY_MEAN = (0.449,)  # the mean of ImageNet's RGB means and stds: grey images on that scale
GREY_STD = (0.226,)


def add_config(config: ml_collections.ConfigDict) -> None:
    config.data.task = "lung_opacity"
    config.data.channels = 1  # 3 replicates the grey image (set data.mean/std to 3 values)
    config.data.mean = GREY_MEAN
    config.data.std = GREY_STD
    config.data.augment = "crop,rotate"  # no flip: the heart is on the left
    config.data.val_fraction = 0.1  # patient-wise 70/10/20 (chest.split=patient)
    config.data.test_fraction = 0.2
    config.eval.best_metric = "mean_auroc"
    config.chest = ml_collections.ConfigDict()
    config.chest.uncertain = "ignore"  # -1 cells: ignore (U-Ignore) | zeros | ones | multiclass
    config.chest.uncertain_per_label = ""  # overrides, e.g. "Atelectasis=ones,Edema=multiclass"
    # -1 cells of the validation and test splits, whatever the training policy: mask (left out
    # of the metrics) | zeros | ones
    config.chest.eval_uncertain = "mask"
    config.chest.empty = "negative"  # empty cells: negative | mask
    config.chest.view = "frontal"  # frontal | lateral | ap | pa | all
    config.chest.split = "patient"  # patient (val/test fractions) | official
    config.demo.num_patients = 700
    config.demo.image_size = 96


def rules(dataset: str) -> dict:
    return {
        "data.task": chest_labels.task_rule(dataset),
        "chest.uncertain": choice(*chest_labels.POLICIES),
        "chest.uncertain_per_label": chest_labels.policies_rule,
        "chest.eval_uncertain": choice(*chest_labels.EVAL_POLICIES),
        "chest.empty": choice(*chest_labels.EMPTY_POLICIES),
        "chest.view": choice(*reader.VIEWS),
        "chest.split": choice(*reader.SPLIT_MODES),
    }


def check(config: ml_collections.ConfigDict) -> list[str]:
    problems = []
    if config.data.channels not in (1, 3):
        problems.append(f"data.channels is {config.data.channels}; chest X-rays load as 1 "
                        f"(grey) or 3 (grey replicated, for RGB-pretrained models) channels")
    if config.data.task == "hierarchical" and (
            config.chest.uncertain == "multiclass"
            or "multiclass" in chest_labels.parse_per_label(config.chest.uncertain_per_label)
            .values()):
        problems.append("chest.uncertain: the hierarchical task trains binary labels; use "
                        "ignore, zeros or ones")
    return problems


def _spec(name: str) -> DatasetSpec:
    def load(root: pathlib.Path, config: ml_collections.ConfigDict,
             is_demo: bool) -> DatasetSplits:
        return reader.load(name, root, config, is_demo)

    def write_demo(root: pathlib.Path, config: ml_collections.ConfigDict) -> None:
        demo.write_demo_dataset(name, root, num_patients=config.demo.num_patients,
                                image_size=config.demo.image_size, seed=config.demo.seed)

    def resolve_files(root: pathlib.Path, splits: DatasetSplits) -> DatasetSplits:
        return reader.resolve_files(name, root, splits)

    if name == "cxr14":  # NIH's box file; a task label in CheXpert terms is made of CXR14's
        extra = {"regions": bbox.regions,
                 "region_findings": lambda label: chest_labels.CXR14_AS_CHEXPERT.get(label,
                                                                                      (label,))}
    else:
        extra = {}
    return DatasetSpec(name=name, metrics=("mean_auroc", "mean_ap"), load=load,
                       write_demo=write_demo, add_config=add_config, rules=rules(name),
                       check=check, resolve_files=resolve_files, **extra)


CHEXPERT = _spec("chexpert")
CXR14 = _spec("cxr14")
