"""Chest X-ray labels: the two vocabularies, the CheXpert <-> CXR14 mapping, tasks and policies.

Raw values, as the readers return them per label: 1.0 positive, 0.0 negative, -1.0 uncertain,
NaN empty (not mentioned). CheXpert has all four; CXR14 only 1 and 0.

The CheXpert <-> CXR14 mapping (for the findings both datasets share), used to name CXR14
labels in CheXpert terms so that a model trained on one dataset can be evaluated on the other:

| CheXpert            | CXR14                                                    |
| ------------------- | -------------------------------------------------------- |
| Atelectasis         | Atelectasis                                              |
| Cardiomegaly        | Cardiomegaly                                             |
| Consolidation       | Consolidation                                            |
| Edema               | Edema                                                    |
| Pleural Effusion    | Effusion                                                 |
| Pneumonia           | Pneumonia                                                |
| Pneumothorax        | Pneumothorax                                             |
| Lung Lesion         | Mass or Nodule                                           |
| Lung Opacity        | any of Atelectasis, Consolidation, Edema, Infiltration,  |
|                     | Mass, Nodule, Pneumonia (the findings CheXpert files     |
|                     | under Lung Opacity, plus Infiltration)                   |
| No Finding          | No Finding                                               |

"Or"/"any of" is the maximum of the raw values (positive if any is positive). CheXpert's
Enlarged Cardiomediastinum, Pleural Other, Fracture and Support Devices and CXR14's
Infiltration, Emphysema, Fibrosis, Pleural_Thickening and Hernia have no counterpart.
A CXR14 task may name CXR14 labels, mapped CheXpert labels, or both.

Uncertainty policies (per label; Irvin et al. 2019): `ignore` (U-Ignore: uncertain is masked
out of loss and metrics), `zeros` (U-Zeros: negative), `ones` (U-Ones: positive), `multiclass`
(U-MultiClass: the label is trained three-way, negative/positive/uncertain, and scored
p1/(p0+p1); uncertain values are left out of its metrics).
Empty cells: `negative` or `mask`, an explicit choice (`chest.empty`). `No Finding` is an
exception: the CheXpert labeler leaves it empty exactly when some finding is mentioned, so its
empty cells are always negative.

Training and evaluation labels are two encodings of the same raw values: the training policy
(above) is a training choice, while validation and test labels follow one evaluation policy of
their own (`EVAL_POLICIES`: `mask`, the default, leaves uncertain cells out of the metrics;
`zeros` / `ones` score them as negative / positive), so that runs trained with U-Zeros, U-Ones
or U-MultiClass are scored against the same ground truth and their best checkpoints chosen on
it. `encode_splits` gives both encodings of a label table; other datasets with uncertain cells
(multi-label CSVs) use it too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from jaxtl.core import tasks
from jaxtl.core.errors import ConfigError

CHEXPERT_LABELS = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion",
    "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
    "Pleural Other", "Fracture", "Support Devices")
CXR14_LABELS = (
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
    "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening",
    "Hernia")
COMPETITION5 = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")

# CheXpert name -> the CXR14 labels it is derived from (maximum of their values).
CXR14_AS_CHEXPERT: dict[str, tuple[str, ...]] = {
    "Atelectasis": ("Atelectasis",),
    "Cardiomegaly": ("Cardiomegaly",),
    "Consolidation": ("Consolidation",),
    "Edema": ("Edema",),
    "Pleural Effusion": ("Effusion",),
    "Pneumonia": ("Pneumonia",),
    "Pneumothorax": ("Pneumothorax",),
    "Lung Lesion": ("Mass", "Nodule"),
    "Lung Opacity": ("Atelectasis", "Consolidation", "Edema", "Infiltration", "Mass", "Nodule",
                     "Pneumonia"),
    "No Finding": ("No Finding",),
}

# child -> parent, in CheXpert names (Pham et al. 2021's hierarchy as the issue states it).
HIERARCHY: dict[str, str] = {
    "Edema": "Lung Opacity", "Consolidation": "Lung Opacity", "Lung Lesion": "Lung Opacity",
    "Atelectasis": "Lung Opacity", "Pneumonia": "Consolidation",
    "Cardiomegaly": "Enlarged Cardiomediastinum",
}
HIERARCHICAL_LABELS = ("Lung Opacity", "Edema", "Consolidation", "Pneumonia", "Lung Lesion",
                       "Atelectasis", "Enlarged Cardiomediastinum", "Cardiomegaly")
POLICIES = ("ignore", "zeros", "ones", "multiclass")
EVAL_POLICIES = ("mask", "zeros", "ones")
_EVAL_AS_ENCODING = {"mask": "ignore", "zeros": "zeros", "ones": "ones"}
EMPTY_POLICIES = ("negative", "mask")
NAMED_TASKS = ("lung_opacity", "all", "competition5", "hierarchical")


def available_labels(dataset: str) -> tuple[str, ...]:
    if dataset == "chexpert":
        return CHEXPERT_LABELS
    return CXR14_LABELS + tuple(name for name in CXR14_AS_CHEXPERT if name not in CXR14_LABELS)


def task_labels(dataset: str, task: str) -> tuple[str, ...]:
    """The label names a task predicts, in order (user errors raise ConfigError)."""
    available = available_labels(dataset)
    if task == "lung_opacity":
        return ("Lung Opacity",)
    if task == "all":
        return CHEXPERT_LABELS if dataset == "chexpert" else CXR14_LABELS
    if task == "competition5":
        return COMPETITION5
    if task == "hierarchical":
        return tuple(name for name in HIERARCHICAL_LABELS if name in available)
    names = tuple(part.strip() for part in task.split(",") if part.strip())
    unknown = [name for name in names if name not in available]
    if unknown or not names:
        raise ConfigError(
            f"config.data.task is {task!r}: {', '.join(map(repr, unknown)) or 'no label'} is "
            f"not a {dataset} label; use one of {', '.join(NAMED_TASKS)}, a label name or a "
            f"comma list of label names from: {', '.join(available)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"config.data.task is {task!r}: a label is named twice")
    return names


def task_rule(dataset: str):
    def check(value) -> str | None:
        if not isinstance(value, str):
            return f"is {value!r}; expected a task name"
        try:
            task_labels(dataset, value)
        except ConfigError as error:
            return str(error).removeprefix("config.data.task ")
        return None

    return check


def parse_per_label(value: str) -> dict[str, str]:
    """'Atelectasis=ones, Cardiomegaly=multiclass' -> {'Atelectasis': 'ones', ...}."""
    out: dict[str, str] = {}
    for part in value.split(","):
        if not part.strip():
            continue
        name, sep, policy = part.partition("=")
        if not sep:
            raise ConfigError(f"config.chest.uncertain_per_label: {part.strip()!r} is not of the "
                              f"form 'Label Name=policy'")
        out[name.strip()] = policy.strip()
    return out


def policies_rule(value) -> str | None:
    if not isinstance(value, str):
        return f"is {value!r}; expected e.g. 'Atelectasis=ones,Cardiomegaly=multiclass'"
    try:
        per_label = parse_per_label(value)
    except ConfigError as error:
        return str(error).removeprefix("config.chest.uncertain_per_label")
    known = set(CHEXPERT_LABELS) | set(CXR14_LABELS)
    bad = [f"{name}={policy}" for name, policy in per_label.items()
           if name not in known or policy not in POLICIES]
    if bad:
        return (f"is {value!r}: {', '.join(bad)} is not a known 'label=policy' pair; policies: "
                f"{', '.join(POLICIES)}")
    return None


def build_task(dataset: str, task: str, uncertain: str, per_label: Mapping[str, str],
               ) -> tuple[tasks.Task, tuple[str, ...]]:
    """The Task and the per-label uncertainty policy of each of its labels."""
    names = task_labels(dataset, task)
    policies = tuple(per_label.get(name, uncertain) for name in names)
    parents = ()
    if task == "hierarchical":
        parents = tuple(names.index(HIERARCHY[name]) if HIERARCHY.get(name) in names else -1
                        for name in names)
        if "multiclass" in policies:
            raise ConfigError("the hierarchical task trains binary labels: use the 'ignore', "
                              "'zeros' or 'ones' uncertainty policy (chest.uncertain and "
                              "chest.uncertain_per_label)")
    three_way = tuple(policy == "multiclass" for name, policy in zip(names, policies))
    return tasks.multilabel(names, three_way, parents), policies


def encode(values: Sequence[float], label: str, policy: str, empty: str) -> np.ndarray:
    """Raw values of one label -> training targets (jaxtl.core.tasks encoding)."""
    raw = np.asarray(values, np.float64)
    out = np.full(raw.shape, tasks.MASKED, np.int8)
    out[raw == 1.0] = tasks.POSITIVE
    out[raw == 0.0] = tasks.NEGATIVE
    empty_cells = np.isnan(raw)
    if empty == "negative" or label == "No Finding":
        out[empty_cells] = tasks.NEGATIVE
    uncertain = raw == -1.0
    out[uncertain] = {"ignore": tasks.MASKED, "zeros": tasks.NEGATIVE, "ones": tasks.POSITIVE,
                      "multiclass": tasks.UNCERTAIN}[policy]
    return out


def encode_evaluation(values: Sequence[float], label: str, policy: str,
                      empty: str) -> np.ndarray:
    """Raw values of one label -> evaluation labels under an `EVAL_POLICIES` policy."""
    return encode(values, label, _EVAL_AS_ENCODING[policy], empty)


def encode_splits(columns: Mapping[str, Sequence[float]], policies: Sequence[str],
                  eval_policy: str, empty: str, training_rows: np.ndarray,
                  ) -> np.ndarray:
    """(N, labels) int8: the rows in `training_rows` (a boolean mask) encoded with each
    label's training policy, every other row (validation, test) with `eval_policy`."""
    training_rows = np.asarray(training_rows, bool)
    out = []
    for (name, values), policy in zip(columns.items(), policies):
        train = encode(values, name, policy, empty)
        evaluation = encode_evaluation(values, name, eval_policy, empty)
        out.append(np.where(training_rows, train, evaluation))
    return np.stack(out, axis=1)


def merged(columns: Sequence[np.ndarray]) -> np.ndarray:
    """Maximum of raw values across columns, NaN only where every column is NaN."""
    stacked = np.stack([np.asarray(c, np.float64) for c in columns])
    with np.errstate(invalid="ignore"):
        out = np.nanmax(np.where(np.isnan(stacked), -math.inf, stacked), axis=0)
    out[np.isinf(out)] = math.nan
    return out
