"""python -m jaxtl.explain --workdir RUN [--split test] [--images N | --ids ID ...]
    [--method gradcam|integrated_gradients|rollout] [--target CLASS_OR_LABEL ...] [--stage NAME]

Explains the run's best checkpoint on a split: writes, under RUN/explain/<split>_<method>/, the
attribution map of every explained image and target (maps.npz), an overlay PNG each
(overlays/), the gallery (index.html) and, where the dataset's regions are known (ChestX-ray14's
BBox_List_2017.csv in the dataset root; every demo's sidecar), the pointing game
(localisation.json). See jaxtl/explain/explainer.py for what is explained and scored.
"""

from __future__ import annotations

import pathlib

from absl import flags

from jaxtl.commands import cli
from jaxtl.explain import attribution, localisation
from jaxtl.explain.explainer import METHODS, Request, explain
from jaxtl.workdir import files as rundir


def define_flags() -> cli.Options:
    return {
        "workdir": flags.DEFINE_string("workdir", None, "The run folder to explain."),
        "split": flags.DEFINE_enum("split", "test", ["train", "val", "test"], "The split."),
        "images": flags.DEFINE_integer("images", None, "Explain the split's first N images "
                                       "(default: all)."),
        "ids": flags.DEFINE_multi_string("ids", [], "Explain these image ids (repeat or "
                                         "separate with commas)."),
        "method": flags.DEFINE_enum("method", "gradcam", list(METHODS), "Attribution method "
                                    "(rollout: attention rollout, Vision Transformers only)."),
        "target": flags.DEFINE_multi_string(
            "target", [], "Multiclass: 'predicted' (default), 'label' (the true class) or a "
            "class name or index. Multilabel: label names or indices (default: every label)."),
        "stage": flags.DEFINE_string("stage", None, "Grad-CAM: the backbone's feature map, a "
                                     "stage (python -m jaxtl.models --stages ARCH) or "
                                     "<stage>_act; default: the last convolutional stage after "
                                     "its activation (docs/explanations.md)."),
        "ig_steps": flags.DEFINE_integer("ig_steps", attribution.DEFAULT_IG_STEPS,
                                         "Integrated gradients: trapezoidal steps.", lower_bound=1),
        "tolerance": flags.DEFINE_float("tolerance", localisation.DEFAULT_TOLERANCE,
                                        "Pointing game tolerance, a fraction of the input side "
                                        "(15/224: 15 px at 224 px).", lower_bound=0.0),
        "batch_size": flags.DEFINE_integer("batch_size", None, "Images per step (default: the "
                                           "run's eval.batch_size).", lower_bound=1),
    }


def _split_commas(values: list[str]) -> tuple[str, ...]:
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


def check(argv: list[str], options: cli.Options) -> str:
    """--check: the flags; the run folder is read when the command runs."""
    del argv
    return (f"the command line parses; explains the run in {options['workdir'].value} (read "
            f"when the command runs)")


def main(argv: list[str], options: cli.Options) -> None:
    del argv
    request = Request(split=options["split"].value, method=options["method"].value,
                      images=options["images"].value, ids=_split_commas(options["ids"].value),
                      targets=_split_commas(options["target"].value),
                      stage=options["stage"].value, ig_steps=options["ig_steps"].value,
                      tolerance=options["tolerance"].value,
                      batch_size=options["batch_size"].value)
    summary = explain(options["workdir"].value, request)
    folder = rundir.explanation_dir(pathlib.Path(summary["run"]), request.split, request.method)
    print(f"explained {summary['images']} images ({', '.join(summary['targets'])}) in "
          f"{summary['seconds']:.1f} s: {folder / rundir.EXPLAIN_GALLERY_FILE}")
    overall = summary["localisation"]["overall"]
    if overall["images"]:
        print(f"pointing game {overall['pointing_game']:.3f} (random map "
              f"{overall['random_map']:.3f}) on {overall['images']} images with regions; mass "
              f"inside {overall['mass_inside']:.3f} (uniform map "
              f"{overall['uniform_map_mass']:.3f})")
    elif summary["not_scored"]:
        print(f"not scored: {summary['not_scored']}")


if __name__ == "__main__":
    cli.run(main, define_flags, required=("workdir",), check=check)
