"""Your own data in jaxtl: a table (`csv`) or class folders (`folders`), their settings,
checks, decoders and specs.

`data.task` says what the images carry: `classes` (one class each: softmax; accuracy, macro F1,
and kappa, which may select the best checkpoint when the classes are ordered grades:
`<section>.ordinal=True`) or, for tables, `labels` (several 1/0/-1/empty label columns:
sigmoids or three-way labels with the chest X-ray policies; AUROC, AP, F1). `bit_depth=16`
keeps 16-bit grey images (radiographs) at full range (`jaxtl.data.decoders.DeepImageDecoder`).
"""

from __future__ import annotations

import pathlib

import ml_collections

from jaxtl.core.settings import Section, Setting, allowing, boolean, choice, text
from jaxtl.data.chest import labels as chest_labels
from jaxtl.data.decoders import Decoder, DeepImageDecoder, ImageFileDecoder
from jaxtl.data.records import DatasetSplits
from jaxtl.data.registry import DatasetSpec
from jaxtl.data.table import csv_file, demo, folders, rows

TASKS = ("classes", "labels")
BIT_DEPTHS = (8, 16)
CLASS_METRICS = ("accuracy", "macro_f1", "kappa")
LABEL_METRICS = ("mean_auroc", "mean_ap", "micro_f1", "macro_f1", "micro_ap")


DEFAULTS = {"data.augment": "crop,flip", "eval.best_metric": "accuracy",
            "demo.num_patients": 300, "demo.image_size": 96}


def _common_settings(tasks: tuple[str, ...]) -> dict[str, Section]:
    """data.task and the keys both forms have (their section's first keys)."""
    return {
        "data": {"task": Setting("classes", choice(*tasks),
                                 "classes: one class per image (softmax); labels (tables "
                                 "only): several 1/0/-1/empty label columns")},
        "section": {
            "classes": Setting("", text, "the class names in order (a comma list); empty: the "
                               "values found (integers in numeric order, else sorted); a class "
                               "outside a given list is an error naming the row"),
            "ordinal": Setting(False, boolean, "the classes are ordered grades (e.g. 0..4): "
                               "quadratic weighted kappa may select the best checkpoint "
                               "(eval.best_metric=kappa); it is reported either way"),
            "bit_depth": Setting(8, choice(*BIT_DEPTHS),
                                 "8, or 16 to keep 16-bit grey images at their full range"),
        },
    }


def _settings(section: str, tasks: tuple[str, ...],
              own: dict[str, Setting]) -> dict[str, Section]:
    common = _common_settings(tasks)
    return {"data": common["data"], section: {**common["section"], **own}}


def _classes_of(section: ml_collections.ConfigDict) -> tuple[str, ...]:
    return rows.parse_names(section.classes)


def _assigned_splits(image_rows: list[rows.Row], config: ml_collections.ConfigDict,
                     source: pathlib.Path, group_key: str) -> list[str]:
    return rows.assign_splits(image_rows, val_fraction=config.data.val_fraction,
                              test_fraction=config.data.test_fraction,
                              seed=config.data.split_seed, source=str(source),
                              group_key=group_key)


def _csv_load(root: pathlib.Path, config: ml_collections.ConfigDict,
              is_demo: bool) -> DatasetSplits:
    section = config.csv
    table = root / demo.TABLE if is_demo else root
    multi = config.data.task == "labels"
    value_columns = (rows.parse_names(section.label_columns) if multi
                     else (section.class_column,))
    columns = {section.path_column: "csv.path_column", section.group_column: "csv.group_column",
               section.split_column: "csv.split_column",
               **{c: "csv.label_columns" if multi else "csv.class_column"
                  for c in value_columns}}
    image_rows = csv_file.read_rows(table, columns=columns, path_column=section.path_column,
                                    value_columns=value_columns,
                                    group_column=section.group_column,
                                    split_column=section.split_column)
    assigned = _assigned_splits(image_rows, config, table, "csv.group_column")
    policies: dict[str, str] = {}
    if multi:
        task, labels, policies = rows.multi_label(
            image_rows, value_columns, uncertain=section.uncertain,
            per_label=chest_labels.parse_per_label(section.uncertain_per_label),
            eval_uncertain=section.eval_uncertain, empty=section.empty,
            training_rows=[split == "train" for split in assigned])
    else:
        task, labels = rows.single_label(image_rows, _classes_of(section), "csv.classes")
    return rows.dataset_splits("csv", image_rows, task, labels, assigned, is_demo, policies)


def _folders_load(root: pathlib.Path, config: ml_collections.ConfigDict,
                  is_demo: bool) -> DatasetSplits:
    image_rows = folders.read_rows(root)
    task, labels = rows.single_label(image_rows, _classes_of(config.folders), "folders.classes")
    assigned = _assigned_splits(image_rows, config, root,
                                "a table (the csv dataset) with a group column")
    return rows.dataset_splits("folders", image_rows, task, labels, assigned, is_demo)


def _check(config: ml_collections.ConfigDict, section_name: str) -> list[str]:
    section = config[section_name]
    problems = []
    if config.data.channels not in (1, 3):
        problems.append(f"data.channels is {config.data.channels}; image files load as 1 (grey) "
                        f"or 3 (RGB) channels")
    metrics = LABEL_METRICS if config.data.task == "labels" else CLASS_METRICS
    if config.eval.best_metric not in metrics:
        problems.append(f"eval.best_metric is {config.eval.best_metric!r}; with data.task="
                        f"{config.data.task} choose one of {', '.join(metrics)}")
    if config.eval.best_metric == "kappa" and not section.ordinal:
        problems.append(f"eval.best_metric is 'kappa', which weighs a disagreement by the "
                        f"distance between class indices; set {section_name}.ordinal=True if "
                        f"the classes are ordered grades")
    classes = _classes_of(section)
    if len(set(classes)) != len(classes):
        problems.append(f"{section_name}.classes names a class twice: {section.classes!r}")
    return problems


def _csv_check(config: ml_collections.ConfigDict) -> list[str]:
    problems = _check(config, "csv")
    section = config.csv
    if config.data.task == "labels":
        names = rows.parse_names(section.label_columns)
        if not names:
            problems.append("csv.label_columns is empty; data.task=labels needs the label "
                            "columns (a comma list)")
        unknown = [n for n in chest_labels.parse_per_label(section.uncertain_per_label)
                   if n not in names]
        if unknown:
            problems.append(f"csv.uncertain_per_label names {', '.join(unknown)}, which "
                            f"csv.label_columns does not")
        if len(set(names)) != len(names):
            problems.append(f"csv.label_columns names a column twice: {section.label_columns!r}")
    elif not section.class_column:
        problems.append("csv.class_column is empty; data.task=classes needs the class column")
    if not section.path_column:
        problems.append("csv.path_column is empty; name the column of image paths")
    return problems


@allowing("'' or column=policy pairs, e.g. 'Effusion=ones,Edema=multiclass'")
def _per_label_rule(value: object) -> str | None:
    if not isinstance(value, str):
        return f"is {value!r}; expected e.g. 'Effusion=ones,Edema=multiclass'"
    try:
        policies = chest_labels.parse_per_label(value)
    except Exception as error:  # a ConfigError naming the chest key; restate it for csv
        return f"is {value!r}: {str(error).partition(': ')[2]}"
    bad = [f"{k}={v}" for k, v in policies.items() if v not in chest_labels.POLICIES]
    return (f"is {value!r}: {', '.join(bad)}; policies: {', '.join(chest_labels.POLICIES)}"
            if bad else None)


def _decoder(section_name: str):
    def decoder(config: ml_collections.ConfigDict) -> Decoder:
        if config[section_name].bit_depth == 16:
            return DeepImageDecoder(config.data.channels)
        return ImageFileDecoder(config.data.channels)

    return decoder


def _write_demo(form: str):
    def write(root: pathlib.Path, config: ml_collections.ConfigDict) -> None:
        demo.write_demo_dataset(root, form, num_patients=config.demo.num_patients,
                                image_size=config.demo.image_size, seed=config.demo.seed)

    return write


CSV_SETTINGS = _settings("csv", TASKS, {
    "path_column": Setting("path", text, "the image file, relative to the table's folder or "
                           "absolute"),
    "class_column": Setting("label", text, "data.task=classes: each image's class"),
    "label_columns": Setting("", text, "data.task=labels: comma list of 1/0/-1/empty columns"),
    "group_column": Setting("patient", text, "patient (or other group); empty: split image by "
                            "image"),
    "split_column": Setting("", text, "train/val/test per row; empty: seeded split by group"),
    "uncertain": Setting("ignore", choice(*chest_labels.POLICIES),
                         "data.task=labels: -1 cells (ignore | zeros | ones | multiclass), as "
                         "for chest X-rays"),
    "uncertain_per_label": Setting("", _per_label_rule, "data.task=labels: per-column "
                                   "overrides of csv.uncertain ('Column=ones,Other=multiclass')"),
    "eval_uncertain": Setting("mask", choice(*chest_labels.EVAL_POLICIES),
                              "-1 cells of the validation and test rows, whatever the training "
                              "policy: mask (left out of the metrics) | zeros | ones; every "
                              "run is then scored against the same labels"),
    "empty": Setting("negative", choice(*chest_labels.EMPTY_POLICIES),
                     "data.task=labels: empty cells (negative | mask)"),
})

CSV = DatasetSpec(
    name="csv", metrics=tuple(dict.fromkeys(CLASS_METRICS + LABEL_METRICS)), load=_csv_load,
    write_demo=_write_demo("csv"), settings=CSV_SETTINGS, defaults=DEFAULTS,
    check=_csv_check, decoder=_decoder("csv"))

FOLDERS = DatasetSpec(
    name="folders", metrics=CLASS_METRICS, load=_folders_load, write_demo=_write_demo("folders"),
    settings=_settings("folders", ("classes",), {}), defaults=DEFAULTS,
    check=lambda config: _check(config, "folders"), decoder=_decoder("folders"))
