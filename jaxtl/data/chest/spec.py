"""CheXpert and ChestX-ray14 in jaxtl: the shared `chest` config section and checks, and one
DatasetSpec per dataset."""

from __future__ import annotations

import pathlib

import ml_collections

from jaxtl.core.settings import Section, Setting, allowing, choice
from jaxtl.data.chest import bbox, demo, reader
from jaxtl.data.chest import labels as chest_labels
from jaxtl.data.records import DatasetSplits
from jaxtl.data.registry import DatasetSpec

GREY_MEAN = (0.449,)  # the mean of ImageNet's RGB means and stds: grey images on that scale
GREY_STD = (0.226,)


DEFAULTS = {
    "data.channels": 1,  # 3 replicates the grey image (set data.mean/std to 3 values)
    "data.mean": GREY_MEAN,
    "data.std": GREY_STD,
    "data.augment": "crop,rotate",  # no flip: the heart is on the left
    "data.val_fraction": 0.1,  # patient-wise 70/10/20 (chest.split=patient)
    "data.test_fraction": 0.2,
    "eval.best_metric": "mean_auroc",
    "demo.num_patients": 700,
    "demo.image_size": 96,
}


def settings(dataset: str) -> dict[str, Section]:
    """The chest section, and data.task with `dataset`'s labels."""
    task_rule = allowing(f"{', '.join(chest_labels.NAMED_TASKS)}, a label name or a comma "
                         f"list of {dataset} labels")(chest_labels.task_rule(dataset))
    return {
        "data": {"task": Setting("lung_opacity", task_rule, "the labels to predict: a named "
                                 "task, one label or a comma list of labels")},
        "chest": {
            "uncertain": Setting("ignore", choice(*chest_labels.POLICIES),
                                 "-1 cells: ignore (U-Ignore) | zeros | ones | multiclass"),
            "uncertain_per_label": Setting(
                "", allowing("'' or label=policy pairs, e.g. 'Atelectasis=ones,Edema="
                             "multiclass'")(chest_labels.policies_rule),
                "per-label overrides of chest.uncertain, e.g. "
                "'Atelectasis=ones,Edema=multiclass'"),
            "eval_uncertain": Setting("mask", choice(*chest_labels.EVAL_POLICIES),
                                      "-1 cells of the validation and test splits, whatever "
                                      "the training policy: mask (left out of the metrics) | "
                                      "zeros | ones"),
            "empty": Setting("negative", choice(*chest_labels.EMPTY_POLICIES),
                             "empty cells: negative | mask"),
            "view": Setting("frontal", choice(*reader.VIEWS),
                            "which views: frontal | lateral | ap | pa | all"),
            "split": Setting("patient", choice(*reader.SPLIT_MODES),
                             "patient (data.val_fraction / data.test_fraction) | official"),
        },
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
                       write_demo=write_demo, settings=settings(name), defaults=DEFAULTS,
                       check=check, resolve_files=resolve_files, **extra)


CHEXPERT = _spec("chexpert")
CXR14 = _spec("cxr14")
