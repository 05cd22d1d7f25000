"""Explaining a trained run: its best checkpoint, a split's images, attribution maps, the
pointing game where regions are known, and the files of `explain/<split>_<method>/`.

Which images: the split's records in their order, all of them, the first `images`, or those
named by `ids`. They go through the evaluation transform and are explained in batches of
`eval.batch_size` (or `batch_size`) by one jit-compiled step over the run's device mesh
(`jaxtl.evaluators.per_example.outputs`, every image exactly once). Which targets: a
multiclass task explains the predicted class (default), the true class (`label`) or a named
class; a multilabel task explains each named label, by default every label of the task.

Scored: for each explained image and target with known regions (a multiclass task: every region
of the image; a multilabel task: the regions of the findings that make the label,
`DatasetSpec.region_findings`), the map at input size against the regions mapped into the input
(jaxtl/explain/localisation.py).
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import re
import time
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import NamedSharding, PartitionSpec

from jaxtl import models
from jaxtl.config.validation import dataset_spec
from jaxtl.core import atomic, progress
from jaxtl.core.errors import UserError
from jaxtl.core.tasks import MASKED, NEGATIVE, POSITIVE, UNCERTAIN, Task
from jaxtl.data import loading, pipeline
from jaxtl.data.records import SPLITS, Record
from jaxtl.data.regions import Box, Regions
from jaxtl.engine import steps, transfer
from jaxtl.engine.build import image_transform
from jaxtl.evaluators.per_example import outputs
from jaxtl.explain import attribution, gallery, localisation, rollout
from jaxtl.workdir import files as rundir

GRADCAM, INTEGRATED_GRADIENTS, ROLLOUT = "gradcam", "integrated_gradients", "rollout"
METHODS = (GRADCAM, INTEGRATED_GRADIENTS, ROLLOUT)
LABEL_VALUES = {POSITIVE: "positive", NEGATIVE: "negative", MASKED: "masked",
                UNCERTAIN: "uncertain"}


@dataclasses.dataclass(frozen=True)
class Request:
    split: str = "test"
    method: str = GRADCAM
    images: int | None = None  # the first N records of the split; None: all
    ids: tuple[str, ...] = ()  # or these image ids
    targets: tuple[str, ...] = ()  # see the module doc
    stage: str | None = None  # Grad-CAM: a named feature map; None: models.gradcam_feature
    ig_steps: int = attribution.DEFAULT_IG_STEPS
    tolerance: float = localisation.DEFAULT_TOLERANCE  # of the input side
    batch_size: int | None = None  # None: the run's eval.batch_size


def chosen_records(records: Sequence[Record], request: Request) -> list[Record]:
    if request.ids and request.images is not None:
        raise UserError("pass --images N or --ids, not both")
    if request.ids:
        by_id = {record.image_id: record for record in records}
        missing = [image_id for image_id in request.ids if image_id not in by_id]
        if missing:
            raise UserError(f"not in the {request.split} split: {', '.join(missing)} (image "
                            f"ids are as in the run's files, e.g. {records[0].image_id!r})")
        return [by_id[image_id] for image_id in request.ids]
    if request.images is not None and request.images < 1:
        raise UserError(f"--images is {request.images}; explain at least one image")
    return list(records[:request.images])


def choose_targets(task: Task, wanted: Sequence[str]) -> attribution.Targets:
    try:
        if task.multilabel:
            return attribution.label_targets(task, list(wanted))
        if len(wanted) > 1:
            raise UserError(f"a multiclass task explains one target per image; got "
                            f"{', '.join(wanted)}")
        return attribution.class_targets(task, wanted[0] if wanted else None)
    except ValueError as error:
        raise UserError(f"--target: {error}") from None


def _gradcam_feature(arch: str, name: str | None) -> str:
    """The named feature Grad-CAM explains: `name` (a stage, or a stage's output after its
    activation), by default the architecture's (`models.gradcam_feature`)."""
    if name is None:
        return models.gradcam_feature(arch)
    if name in models.feature_names(arch):
        return name
    raise UserError(f"--stage is {name!r}; {arch} returns the feature maps "
                    f"{', '.join(models.feature_maps(arch))} (default "
                    f"{models.gradcam_feature(arch)})")


def _step(model: Any, request: Request, targets: attribution.Targets, stage: str | None,
          mesh: jax.sharding.Mesh, normalisation: steps.Normalise):
    """The jit-compiled step: a batch -> maps (B, T, h, w) and what the files record."""

    def step(variables: Any, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
        images, labels = steps.normalised(batch, normalisation), batch["label"]
        out: dict[str, jax.Array] = {}
        if request.method == GRADCAM:
            maps, logits = attribution.gradcam(model, variables, images, stage, targets, labels)
        elif request.method == ROLLOUT:
            maps, logits = rollout.rollout(model, variables, images, targets.count)
        else:
            result = attribution.integrated_gradients(model, variables, images, targets,
                                                      labels, request.ig_steps)
            maps, logits = result.maps, result.logits
            out = {"completeness_gap": result.completeness_gap,
                   "score_difference": result.score_difference}
        return {**out, "maps": maps, "logits": logits,
                "explained": targets.explained(logits, labels),
                "label": labels, "index": batch["index"], "mask": batch["mask"],
                "valid": batch["valid"]}

    data = NamedSharding(mesh, PartitionSpec("data"))
    return jax.jit(step, in_shardings=(steps.replicated(mesh), data),
                   out_shardings=steps.replicated(mesh))


def _with_progress(step, batches: int, method: str):
    """`step`, counting its batches on a progress bar (host 0)."""
    bar = progress.bar(batches, unit="batch", desc=method, mininterval=2.0,
                       disable=jax.process_index() != 0)

    def counted(variables: Any, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
        out = step(variables, batch)
        bar.update(1)
        if bar.n == bar.total:
            bar.close()
        return out

    return counted


def _config(workdir: pathlib.Path, request: Request) -> ml_collections.ConfigDict:
    config = rundir.read_config(workdir)
    if loading.prepared_folder(config):
        # drawn on, and boxes mapped into, the original files' pixels, not the prepared ones
        config.data.prepared = ""
    if request.batch_size is not None:
        config.eval.batch_size = request.batch_size
    return config


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


@dataclasses.dataclass
class Explained:
    """The step's outputs for the chosen records, in their order."""

    records: list[Record]
    maps: np.ndarray  # (N, T, h, w)
    logits: np.ndarray
    explained: np.ndarray  # (N, T) class or label index
    labels: np.ndarray
    extra: dict[str, np.ndarray]


def _regions_for(task: Task, regions: Regions | None, record: Record, target_index: int,
                 findings_of) -> tuple[Box, ...]:
    if regions is None:
        return ()
    if not task.multilabel:
        return regions.of(record.image_id)
    return regions.of(record.image_id, findings_of(task.names[target_index]))


def explain(workdir: str | pathlib.Path, request: Request = Request()) -> dict[str, Any]:
    """Explains the run in `workdir` as `request` says; writes `explain/<split>_<method>/` and
    returns what localisation.json holds."""
    started = time.time()
    workdir = pathlib.Path(workdir).resolve()
    if request.split not in SPLITS:
        raise UserError(f"--split is {request.split!r}; choose one of {', '.join(SPLITS)}")
    if request.method not in METHODS:
        raise UserError(f"--method is {request.method!r}; choose one of {', '.join(METHODS)}")
    config = _config(workdir, request)
    spec = dataset_spec(config)
    splits = loading.load_splits(config, spec)
    task = splits.task
    all_records = splits.split(request.split)
    if not all_records:
        raise UserError(f"the {request.split} split of {splits.name} is empty")
    records = chosen_records(all_records, request)
    targets = choose_targets(task, request.targets)
    stage = (_gradcam_feature(config.model.arch, request.stage) if request.method == GRADCAM
             else None)

    mesh = steps.make_mesh()
    model = models.create_model(config.model.arch, num_outputs=task.num_outputs,
                                head=config.model.head, dropout=config.model.dropout,
                                dtype=config.model.dtype)
    if request.method == ROLLOUT:
        try:
            model = rollout.with_attention(model, config.model.arch)
        except ValueError as error:
            raise UserError(f"--method rollout: {error}") from None
    variables = jax.device_put(transfer.load_variables(workdir), steps.replicated(mesh))
    resolution, channels = config.data.resolution, config.data.channels
    if stage is not None:
        try:
            attribution.feature_map_shape(model, variables,
                                          (1, resolution, resolution, channels), stage)
        except ValueError as error:
            raise UserError(f"--stage {stage}: {error}") from None
    transform = image_transform(config, augment=False)
    computed = time.time()
    step = _with_progress(_step(model, request, targets, stage, mesh, transform.normalisation),
                          math.ceil(len(records) / config.eval.batch_size), request.method)
    out = outputs(step, variables, records, transform, config=config,
                  layout=pipeline.Layout.from_mesh(mesh), task=task)
    computed = time.time() - computed
    records, out, unreadable = _readable(records, out)
    result = Explained(records, out.pop("maps"), out.pop("logits"), out.pop("explained"),
                       out.pop("label"), out)
    regions = loading.known_regions(config, spec)
    summary = {
        "run": str(workdir), "dataset": splits.name, "demo": loading.is_demo(config),
        "split": request.split, "method": request.method, "arch": config.model.arch,
        "images": len(records), "unreadable_images": unreadable,
        "targets": list(targets.names),
        "resolution": resolution, "map_size": list(result.maps.shape[2:]),
        "tolerance_fraction": request.tolerance, "tolerance_px": request.tolerance * resolution,
        "regions": regions.source if regions is not None else None,
        "attribution_seconds": computed,
    }
    if stage is not None:
        summary |= {"stage": stage}
    elif request.method == ROLLOUT:
        summary |= {"rollout": _rollout_row(model)}
    else:
        summary |= {"ig_steps": request.ig_steps, "ig_baseline": "zero input (data.mean)",
                    **_completeness(result)}
    if jax.process_index() == 0:
        summary |= _write(rundir.explanation_dir(workdir, request.split, request.method),
                          result, task, targets, transform, regions, spec.region_findings,
                          request, summary)
    summary["seconds"] = time.time() - started
    if jax.process_index() == 0:
        atomic.write_json(rundir.explanation_dir(workdir, request.split, request.method)
                          / rundir.EXPLAIN_LOCALISATION_FILE, summary, indent=2)
    return summary


def _readable(records: Sequence[Record], out: dict[str, np.ndarray]
              ) -> tuple[list[Record], dict[str, np.ndarray], list[str]]:
    """Drops the images that could not be read (blank stand-ins under
    `data.bad_images=skip`: their maps mean nothing); returns their ids too."""
    valid = out.pop("valid").astype(bool)
    unreadable = [record.image_id for record, ok in zip(records, valid) if not ok]
    if unreadable:
        logging.warning("explain: %d unreadable images left out (data.bad_images=skip): %s",
                        len(unreadable), ", ".join(unreadable[:10]))
    kept = [record for record, ok in zip(records, valid) if ok]
    return kept, {key: value[valid] for key, value in out.items()}, unreadable


def _rollout_row(model: Any) -> str:
    """Which row of the rollout the maps are (jaxtl/explain/rollout.py)."""
    pool = getattr(model, models.BACKBONE).config.global_pool
    return "class token" if pool == "token" else "mean of the patch tokens (global_pool=avg)"


def _completeness(result: Explained) -> dict[str, float]:
    gap = np.abs(result.extra["completeness_gap"])
    relative = gap / np.maximum(np.abs(result.extra["score_difference"]), 1e-12)
    return {"ig_completeness_gap_median": float(np.median(relative)),
            "ig_completeness_gap_max": float(np.max(relative))}


def _describe(task: Task, logits: np.ndarray, label: np.ndarray, target_index: int
              ) -> tuple[str, str]:
    """(label, prediction) text of one image as the gallery shows it."""
    scores = task.scores(logits[None])[0]
    if not task.multilabel:
        predicted = int(np.argmax(scores))
        return task.names[int(label)], f"{task.names[predicted]} ({scores[predicted]:.2f})"
    value = int(label[target_index])
    return (f"{task.names[target_index]} {LABEL_VALUES.get(value, str(value))}",
            f"P({task.names[target_index]}) = {scores[target_index]:.2f}")


def _write(folder: pathlib.Path, result: Explained, task: Task, targets: attribution.Targets,
           transform, regions: Regions | None, findings_of, request: Request,
           summary: dict[str, Any]) -> dict[str, Any]:
    """Overlays, maps.npz and the gallery, in a folder that replaces the previous one; returns
    the localisation scores."""
    resolution = transform.resolution
    geometry = localisation.follows_geometry(transform)
    tolerance = request.tolerance * resolution
    scored: dict[str, list[localisation.MapScore]] = {name: [] for name in targets.names}
    cards = []
    with atomic.replaced_folder(folder) as staging:
        (staging / rundir.EXPLAIN_OVERLAYS_DIR).mkdir()
        for n, record in enumerate(result.records):
            pixels = transform.pixels(record.path, None)
            sizes = None
            for t, name in enumerate(targets.names):
                index = int(result.explained[n, t])
                cells = result.maps[n, t]
                boxes: list[Box] = []
                found = _regions_for(task, regions, record, index, findings_of)
                if found and geometry:
                    sizes = sizes or localisation.stored_and_decoded_size(transform, record)
                    boxes = localisation.to_input(found, *sizes, transform)
                pointing = ""
                if boxes:
                    score = localisation.score_map(cells, boxes, tolerance, resolution)
                    scored[name].append(score)
                    pointing = "hit" if score.hit else "miss"
                file = (f"{rundir.EXPLAIN_OVERLAYS_DIR}/{n:05d}_{_safe(record.image_id)}_"
                        f"{_safe(name)}.png")
                (staging / file).write_bytes(gallery.overlay_png(
                    pixels, localisation.to_input_size(cells, resolution), boxes,
                    localisation.peak_point(cells, resolution)))
                label, prediction = _describe(task, result.logits[n], result.labels[n], index)
                shown = task.names[index] + (f" ({name})" if targets.mode else "")
                cards.append(gallery.Card(file, record.image_id, label, prediction, shown,
                                          pointing))
        localised = {name: localisation.summarise(scores) for name, scores in scored.items()}
        overall = localisation.summarise([s for scores in scored.values() for s in scores])
        np.savez_compressed(staging / rundir.EXPLAIN_MAPS_FILE,
                            maps=result.maps.astype(np.float16),
                            image_id=np.array([r.image_id for r in result.records]),
                            targets=np.array(targets.names), explained=result.explained,
                            labels=result.labels, scores=task.scores(result.logits),
                            **result.extra)
        notes = _notes(summary, regions, geometry)
        table = [["target", "images with regions", "pointing game", "random map",
                  "mass inside", "uniform map"]] + [
            [name, str(s["images"]), *(_fmt(s[key]) for key in
                                       ("pointing_game", "random_map", "mass_inside",
                                        "uniform_map_mass"))]
            for name, s in {**localised, "all": overall}.items()]
        (staging / rundir.EXPLAIN_GALLERY_FILE).write_text(gallery.page(
            f"{summary['dataset']} {request.split}: {request.method}", notes,
            table if regions is not None and geometry else [], cards))
    not_scored = None
    if regions is None:
        not_scored = "no regions are known for this dataset"
    elif not geometry:
        not_scored = ("the decoder preprocesses the images (e.g. eyepacs.preprocess=graham), "
                      "so the regions cannot be mapped into the input")
    return {"localisation": {"overall": overall, "per_target": localised},
            "not_scored": not_scored}


def _fmt(value: Any) -> str:
    return "" if value is None else f"{value:.3f}"


def _notes(summary: dict[str, Any], regions: Regions | None, geometry: bool) -> list[str]:
    grid = f"a {summary['map_size'][0]} x {summary['map_size'][1]} map"
    if summary["method"] == GRADCAM:
        how = f"Grad-CAM at the feature {summary['stage']} ({grid})"
    elif summary["method"] == ROLLOUT:
        how = (f"attention rollout over every block, the {summary['rollout']} row over the "
               f"patch tokens ({grid}; the same map for every target)")
    else:
        how = (f"integrated gradients, {summary['ig_steps']} trapezoidal steps from the "
               f"{summary['ig_baseline']} baseline")
    notes = [f"Run {summary['run']} ({summary['arch']}, {summary['resolution']} px"
             f"{', DEMO data' if summary['demo'] else ''}): {how}. Left: the input as the "
             f"model sees it; right: the map over it, the centre of its maximal cell as a white "
             f"cross, known regions as green boxes."]
    if regions is not None and geometry:
        notes.append(f"Regions from {regions.source}. Pointing game: a hit when the centre of "
                     f"the map's maximal cell lies within {summary['tolerance_px']:.1f} px "
                     f"({summary['tolerance_fraction']:.3f} of the side) of a region; random "
                     f"map: the hit rate of a maximum on a uniformly random cell; mass "
                     f"inside: the map's fraction inside the regions (a uniform map: their "
                     f"area).")
    return notes
