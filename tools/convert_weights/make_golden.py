"""Writes the golden timm outputs that the parity tests compare jaxtl with.

Needs torch, torchvision and timm beside jaxtl itself (it reads each architecture's timm facts
from jaxtl.models), e.g. a virtual environment with `pip install -e . torch torchvision timm`:

    python -m jaxtl.convert_weights.make_golden --out tests/tools/golden

For every architecture with golden timm outputs (its model family's `TimmCheckpoint`, unless
`golden=False`: a size of a family checked at others), timm's model built by its timm name and
arguments (`TimmCheckpoint.model_name`, `timm_kwargs`: e.g. ViT's `dynamic_img_size=True`,
MAE's `global_pool="avg"`):
  1. the timm model's state-dict names and shapes (the manifest; 1000 classes),
  2. the architecture's `norm_scale` (`choose_norm_scale`): one for which the random
     network neither forgets its input nor explodes, in every row,
  3. synthetic weights for them from NumPy (`synthetic.synthetic_state_dict`), written to a
     .safetensors file that timm itself loads (`timm.models.load_checkpoint`); every tensor timm
     then holds is checked to equal the NumPy one, and a digest of the weights is kept so CI
     (which regenerates them without torch) can prove it feeds jaxtl the very same weights,
  4. timm's logits (eval mode, float32, batch 1) for a fixed seeded input at the native
     resolution and at 512 px, with 3 and with 1 input channels (`timm_reference` says what a
     1-channel input is compared with).
Plus two layouts that do not come from timm's own state dicts:
  * `bit_npz`: the resnetv2_50x1_bit weights written in the original BiT .npz naming
    (`synthetic.bit_npz_from_timm`) and loaded by timm's own BiT loader
    (`resnetv2._load_weights`), which must reproduce the same tensors;
  * `torchvision_densenet121`: torchvision's densenet121 built like torchxrayvision's chest
    X-ray model (1-channel conv0, 18 outputs) with its own synthetic weights.

Outputs: `manifests.json.gz`, `logits.npz` (one array per row, named `ARCH/rRES_cCH`) and
`golden.json` (norm scales, digests, library versions, and per row the largest |logit| and the
input sensitivity: how far the logits move when the image is replaced by another one).
"""

from __future__ import annotations

import gzip
import json
import os
import pathlib
import tempfile
import time

import numpy as np
import safetensors.numpy
import timm
import torch
import torchvision
from absl import flags

from jaxtl.commands import cli
from jaxtl.conversion.timm_layout import timm_checkpoint

from . import synthetic, timm_reference
from .verify import golden_architectures, row_name, settings

SCALE_LOW, SCALE_HIGH = 0.3, 1.5  # range searched for each architecture's norm_scale
BISECTION_STEPS = 8
MAX_LOGIT = 50.0  # largest |logit| allowed in any row
MIN_SENSITIVITY = 0.01  # smallest logit change between the two input images, in any row
NUM_CLASSES = 1000
XRV_CLASSES = 18  # torchxrayvision's DenseNet121 outputs


def manifest_of(model: torch.nn.Module) -> list[tuple[str, list[int]]]:
    return [(name, list(value.shape)) for name, value in model.state_dict().items()
            if not name.endswith("num_batches_tracked")]


def build(arch: str, num_classes: int = NUM_CLASSES) -> torch.nn.Module:
    """timm's model of jaxtl's `arch`, with random weights."""
    checkpoint = timm_checkpoint(arch)
    return timm_reference.build(checkpoint.model_name(arch), num_classes,
                                kwargs=dict(checkpoint.timm_kwargs))


def check_pretrained_cfg(arch: str) -> None:
    """The architecture's `TimmCheckpoint` must state what timm's default pretrained config says."""
    cfg = build(arch).pretrained_cfg
    checkpoint = timm_checkpoint(arch)
    # timm's pretrained config keeps the input of the tag's weights; an architecture built
    # with another img_size (RETFound-Green's 392 px) takes that one
    resolution = dict(checkpoint.timm_kwargs).get("img_size", cfg["input_size"][1])
    found = (resolution, tuple(cfg["mean"]), tuple(cfg["std"]), cfg["first_conv"],
             cfg["classifier"], cfg["tag"])
    wanted = (checkpoint.resolution, checkpoint.mean, checkpoint.std, checkpoint.first_conv,
              checkpoint.classifier, checkpoint.tag)
    if found != wanted:
        raise SystemExit(f"jaxtl.models' TimmCheckpoint of {arch} says {wanted}, timm says {found}")


def golden_rows(arch: str, manifest, scale: float) -> tuple[dict, dict, dict]:
    """(state, logits per row, stats per row) for `arch`'s synthetic weights at `scale`."""
    state = synthetic.synthetic_state_dict(manifest, scale)
    model3 = timm_reference.load(build(arch), state)
    logits = {row_name(arch, res, ch): reference_logits(arch, model3, state,
                                                        synthetic.synthetic_input(res, ch))
              for res, ch in settings(arch)}
    stats = {}
    for res, ch in settings(arch):
        # The 3- and 1-channel inputs are different images: how far apart their logits are
        # says how much the network's output depends on its input.
        name, other = row_name(arch, res, ch), row_name(arch, res, 4 - ch)
        stats[name] = {"max_abs_logit": float(np.abs(logits[name]).max()),
                       "sensitivity": float(np.abs(logits[name] - logits[other]).max())}
    return state, logits, stats


def reference_logits(arch: str, model3: torch.nn.Module, state: dict[str, np.ndarray],
                     images_nhwc: np.ndarray) -> np.ndarray:
    checkpoint = timm_checkpoint(arch)
    return timm_reference.reference_logits(checkpoint.model_name(arch), model3, state,
                                           images_nhwc, first_conv=checkpoint.first_conv,
                                           classifier=checkpoint.classifier,
                                           kwargs=dict(checkpoint.timm_kwargs))


def choose_norm_scale(arch: str, manifest) -> tuple[float, dict, dict, dict]:
    """Bisection on [SCALE_LOW, SCALE_HIGH] for a norm_scale with which every row's logits
    stay below MAX_LOGIT (else: smaller) and move by at least MIN_SENSITIVITY between the two
    input images (else: larger). Returns the scale and `golden_rows` at it."""
    low, high = SCALE_LOW, SCALE_HIGH
    scale = 1.0
    for _ in range(BISECTION_STEPS):
        state, logits, stats = golden_rows(arch, manifest, scale)
        too_big = max(s["max_abs_logit"] for s in stats.values()) > MAX_LOGIT
        too_flat = min(s["sensitivity"] for s in stats.values()) < MIN_SENSITIVITY
        print(f"  {arch} norm_scale {scale}: " + ("too big" if too_big else "too flat"
              if too_flat else "ok"), flush=True)
        if too_big == too_flat:  # both fine (or both wrong: nothing better to find)
            break
        if too_big:
            high = scale
        else:
            low = scale
        scale = round((low + high) / 2, 5)
    if too_big or too_flat:
        raise SystemExit(f"{arch}: no norm_scale found; last {scale}: {stats}")
    return scale, state, logits, stats


def timm_loaded_from_file(arch: str, state: dict[str, np.ndarray], tmp: pathlib.Path):
    path = tmp / f"{arch}.safetensors"
    safetensors.numpy.save_file(state, path)
    model = build(arch)
    timm.models.load_checkpoint(model, str(path), strict=False)
    return timm_reference.load(model, state)  # asserts timm holds exactly these tensors


def bit_npz_row(state: dict[str, np.ndarray], tmp: pathlib.Path, model3) -> tuple[str, np.ndarray]:
    npz = synthetic.bit_npz_from_timm(state)
    path = tmp / "bit.npz"
    np.savez(path, **npz)
    model = timm_reference.build("resnetv2_50x1_bit", NUM_CLASSES)
    model.load_pretrained(str(path))  # timm's resnetv2._load_weights
    for name, value in model.state_dict().items():
        if not np.array_equal(value.numpy(), state[name]):
            raise SystemExit(f"timm's BiT loader put other values into {name}: "
                             f"synthetic.bit_npz_from_timm names are wrong")
    x = synthetic.synthetic_input(timm_checkpoint("resnetv2_50x1_bit").resolution, 3)
    logits = timm_reference.forward(model, x)
    if not np.array_equal(logits, timm_reference.forward(model3, x)):
        raise SystemExit("BiT npz model differs from the state-dict model")
    return synthetic.digest(npz), logits


def torchvision_densenet() -> torch.nn.Module:
    """torchvision densenet121 shaped like torchxrayvision's: 1-channel conv0, 18 outputs."""
    model = torchvision.models.densenet121(weights=None, num_classes=XRV_CLASSES)
    model.features.conv0 = torch.nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model.eval()


def define_flags() -> cli.Options:
    return {
        "out": flags.DEFINE_string("out", "tests/tools/golden", "folder of the golden files"),
        "archs": flags.DEFINE_list("archs", golden_architectures(), "architectures "
                                   "(default: all)"),
    }


def main(argv: list[str], options: cli.Options) -> None:
    del argv
    archs = options["archs"].value
    every_arch = archs == golden_architectures()
    out = pathlib.Path(options["out"].value)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(int(os.environ.get("GOLDEN_THREADS", "2")))
    manifests, logits, meta = {}, {}, {"rows": {}, "digests": {},
                                             "norm_scales": {}}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = pathlib.Path(tmp_name)
        for arch in archs:
            started = time.time()
            check_pretrained_cfg(arch)
            manifest = manifest_of(build(arch))
            scale, state, arch_logits, stats = choose_norm_scale(arch, manifest)
            model3 = timm_loaded_from_file(arch, state, tmp)
            for name, x in ((row_name(arch, r, c), synthetic.synthetic_input(r, c))
                            for r, c in settings(arch)[:1]):  # from the file: the same logits
                if not np.array_equal(reference_logits(arch, model3, state, x),
                                      arch_logits[name]):
                    raise SystemExit(f"{arch}: timm loaded from the file gives other logits")
            manifests[arch] = manifest
            meta["norm_scales"][arch] = scale
            meta["digests"][arch] = synthetic.digest(state)
            logits.update(arch_logits)
            meta["rows"].update(stats)
            if arch == "resnetv2_50x1_bit":
                meta["digests"]["bit_npz"], logits["bit_npz/r224_c3"] = bit_npz_row(state, tmp, model3)
            print(f"{arch}: {time.time() - started:.1f} s, norm_scale {scale}, " + ", ".join(
                f"{k.split('/')[1]} max|logit| {v['max_abs_logit']:.2f} sens {v['sensitivity']:.3g}"
                for k, v in meta["rows"].items() if k.startswith(arch + "/")), flush=True)
            (tmp / f"{arch}.safetensors").unlink()
    if "densenet121" in archs:
        model = torchvision_densenet()
        manifest = manifest_of(model)
        scale = meta["norm_scales"].get("densenet121", 1.0)
        meta["norm_scales"]["torchvision_densenet121"] = scale
        state = synthetic.synthetic_state_dict(manifest, scale)
        timm_reference.load(model, state)
        manifests["torchvision_densenet121"] = manifest
        meta["digests"]["torchvision_densenet121"] = synthetic.digest(state)
        x = synthetic.synthetic_input(224, 1)
        logits["torchvision_densenet121/r224_c1"] = timm_reference.forward(model, x)
    meta["versions"] = {"timm": timm.__version__, "torch": torch.__version__,
                        "torchvision": torchvision.__version__, "numpy": np.__version__}
    previous = load_existing(out) if not every_arch else None
    if previous is not None:  # a partial run updates the given architectures only
        old_manifests, old_logits, old_meta = previous
        manifests = old_manifests | manifests
        logits = old_logits | logits
        meta = {key: old_meta[key] | meta[key] if key != "versions" else meta[key]
                for key in meta}
    with gzip.open(out / "manifests.json.gz", "wt") as f:
        json.dump(manifests, f)
    np.savez_compressed(out / "logits.npz", **logits)
    (out / "golden.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")


def load_existing(out: pathlib.Path):
    if not (out / "golden.json").exists():
        return None
    with gzip.open(out / "manifests.json.gz", "rt") as f:
        manifests = json.load(f)
    with np.load(out / "logits.npz") as z:
        logits = {k: z[k] for k in z.files}
    return manifests, logits, json.loads((out / "golden.json").read_text())


if __name__ == "__main__":
    cli.run(main, define_flags)
