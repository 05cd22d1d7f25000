"""Golden outputs of Hugging Face transformers, open_clip and timm's big_vision loader, for the
`hf`, `open_clip` and `big_vision` converters' tests (tests/tools/test_library_converters.py).

Needs torch, timm, transformers and open_clip_torch (no jax): run from the repository root

    PYTHONPATH=$PWD python -m jaxtl.convert_weights.make_library_golden --out tests/tools/golden

Test-size models with synthetic weights from NumPy (`synthetic`, `synthetic_layouts`), so CI
rebuilds the very files without torch (the digests prove it):
  * `hf_vit` (Phikon's layout, ViTModel with its pooler): timm `test_vit`'s golden weights
    (tests/tools/golden, from make_golden) in transformers' names;
  * `hf_dinov2` (RAD-DINO's layout, Dinov2Model): timm `vit_base_patch14_dinov2` at jaxtl's
    `test_vit_patch14_dinov2` size, in transformers' names; outputs at its 112 px grid, at
    56 px (position embeddings shrunk) and 224 px (grown), where Dinov2Model resamples them;
  * `open_clip`: an open_clip CLIP whose image tower is timm `test_vit` (`visual.trunk`,
    `test_vit`'s golden weights) with a linear projection and a tiny text tower;
  * `big_vision`: `test_vit`'s golden weights as AugReg and big_vision `.npz` files.
Each library loads its file itself and must then hold exactly the synthetic tensors (transformers
and open_clip report no missing or unexpected names; timm's `.npz` loader fills every tensor).
Stored, per model and resolution: the pooled features (`last_hidden_state[:, 0]`, the trunk's
output) and the token grid after the second-last block (`hidden_states[depth - 1]`, class
token removed: jaxtl's `block<depth-2>` feature), plus how far the pooled features move for
another image (`sensitivity`). Also stored: how far Dinov2Model's resampling of a 37 x 37 grid
(RAD-DINO's) to 16 x 16 (224 px) is from timm's, with TOKEN_STD position embeddings.
Outputs: `libraries.json` (configs, manifests, digests, versions, sensitivities) and
`libraries.npz`. `--real_sizes DIR` also writes full-size RAD-DINO and Phikon layouts for a
one-off check (`verify_libraries`).
"""

from __future__ import annotations

import argparse
import gzip
import json
import pathlib
import shutil
import tempfile

import numpy as np
import open_clip
import safetensors.numpy
import timm
import torch
import transformers
from timm.layers import resample_abs_pos_embed

from . import synthetic, synthetic_layouts

DEPTH, WIDTH, HEADS = 6, 64, 2  # timm's test_vit and jaxtl's test_vit_patch14_dinov2
HF_VIT = dict(model_type="vit", hidden_size=WIDTH, num_hidden_layers=DEPTH,
              num_attention_heads=HEADS, intermediate_size=3 * WIDTH, image_size=160,
              patch_size=16)  # layer_norm_eps: transformers' default 1e-12, as Phikon's
HF_DINOV2 = dict(model_type="dinov2", hidden_size=WIDTH, num_hidden_layers=DEPTH,
                 num_attention_heads=HEADS, mlp_ratio=3, image_size=112, patch_size=14)
DINOV2_TIMM = dict(embed_dim=WIDTH, depth=DEPTH, num_heads=HEADS, mlp_ratio=3, img_size=112)
DINOV2_RESOLUTIONS = (112, 56, 224)
OPEN_CLIP = {"embed_dim": 32,
             "vision_cfg": {"timm_model_name": "test_vit", "timm_model_pretrained": False,
                            "timm_pool": "", "timm_proj": "linear", "image_size": 160},
             "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2,
                          "layers": 1}}
OPEN_CLIP_PREPROCESS = {"mean": [0.4, 0.45, 0.5], "std": [0.25, 0.26, 0.27]}
NORM_SCALE = 1.0  # hf_dinov2's synthetic weights (test_vit's: make_golden's choice)
# --real_sizes: RAD-DINO's and Phikon's full-size layouts (their config.json's size keys), the
# timm model whose names give the synthetic weights, and the resolutions compared
REAL_SIZES = {
    "rad_dino": (dict(model_type="dinov2", hidden_size=768, num_hidden_layers=12,
                      num_attention_heads=12, mlp_ratio=4, image_size=518, patch_size=14),
                 "vit_base_patch14_dinov2", (518, 224)),
    "phikon": (dict(model_type="vit", hidden_size=768, num_hidden_layers=12,
                    num_attention_heads=12, intermediate_size=3072, image_size=224,
                    patch_size=16),
               "vit_base_patch16_224", (224,))}
PREPROCESSOR = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}


def images(resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """The input (synthetic_input, 3 channels) and another image (the grey one on R, G, B)."""
    return (synthetic.synthetic_input(resolution, 3),
            np.repeat(synthetic.synthetic_input(resolution, 1), 3, axis=-1))


def nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def test_vit_state(golden: pathlib.Path) -> dict[str, np.ndarray]:
    with gzip.open(golden / "manifests.json.gz", "rt") as f:
        manifest = json.load(f)["test_vit"]
    meta = json.loads((golden / "golden.json").read_text())
    state = synthetic.synthetic_state_dict(manifest, meta["norm_scales"]["test_vit"])
    if synthetic.digest(state) != meta["digests"]["test_vit"]:
        raise SystemExit("test_vit's NumPy weights differ from make_golden's: regenerate those")
    return state


def hf_outputs(model, x: np.ndarray) -> dict[str, np.ndarray]:
    with torch.no_grad():
        out = model(pixel_values=nchw(x), output_hidden_states=True)
    grid = out.hidden_states[model.config.num_hidden_layers - 1][:, 1:].numpy()
    side = round(grid.shape[1] ** 0.5)
    return {"pooled": out.last_hidden_state[:, 0].numpy(),
            "grid": grid.reshape(1, side, side, -1)}


def hf_model(kind: str, config: dict, weights: dict[str, np.ndarray], tmp: pathlib.Path):
    """transformers' model loaded from a folder holding exactly `weights`, and the full
    config.json it writes."""
    folder = tmp / kind
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    safetensors.numpy.save_file(weights, folder / "model.safetensors")
    cls = transformers.ViTModel if config["model_type"] == "vit" else transformers.Dinov2Model
    model, info = cls.from_pretrained(folder, output_loading_info=True)
    if any(info.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")):
        raise SystemExit(f"{kind}: transformers did not take the file: {info}")
    model.save_pretrained(tmp / f"{kind}-saved")  # what it holds, in the on-disk names
    held = safetensors.numpy.load_file(tmp / f"{kind}-saved" / "model.safetensors")
    if set(held) != set(weights) or any(not np.array_equal(held[k], weights[k]) for k in held):
        raise SystemExit(f"{kind}: transformers holds other tensors than the file's")
    # the whole config.json, as a download has it
    return model.eval(), json.loads((tmp / f"{kind}-saved" / "config.json").read_text())


def rows_of(kind: str, model, resolutions, run) -> tuple[dict, dict]:
    arrays, stats = {}, {}
    for resolution in resolutions:
        x, other = images(resolution)
        out, moved = run(model, x), run(model, other)
        for name, value in out.items():
            arrays[f"{kind}/r{resolution}/{name}"] = value.astype(np.float32)
        stats[f"{kind}/r{resolution}"] = {
            "sensitivity": float(np.abs(out["pooled"] - moved["pooled"]).max()),
            "max_abs": float(np.abs(out["pooled"]).max())}
    return arrays, stats


def dinov2_resampling_gap() -> float:
    """max |Dinov2Model's resampling - timm's| for a 37 x 37 grid to 16 x 16 (518 -> 224 px)."""
    rng = np.random.default_rng(0)
    grid = torch.from_numpy((synthetic.TOKEN_STD * rng.standard_normal((1, 37 * 37, 768)))
                            .astype(np.float32))
    square = grid.reshape(1, 37, 37, -1).permute(0, 3, 1, 2)
    hf = torch.nn.functional.interpolate(square, size=(16, 16), mode="bicubic",
                                         align_corners=False)
    hf = hf.permute(0, 2, 3, 1).reshape(1, -1, 768)
    ours = resample_abs_pos_embed(grid, (16, 16), num_prefix_tokens=0)
    return float((hf - ours).abs().max())


def real_sizes(target: pathlib.Path) -> None:
    """Full-size model folders and transformers' outputs for `verify_libraries` (its doc)."""
    target.mkdir(parents=True, exist_ok=True)
    arrays, rows = {}, {}
    for name, (config, timm_name, resolutions) in REAL_SIZES.items():
        reference = timm.create_model(timm_name, pretrained=False, num_classes=0)
        manifest = [(k, list(v.shape)) for k, v in reference.state_dict().items()]
        weights = synthetic_layouts.hf_from_timm(
            synthetic.synthetic_state_dict(manifest, NORM_SCALE), config["model_type"])
        model, _ = hf_model(name, config, weights, target)
        shutil.rmtree(target / f"{name}-saved")
        (target / name / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR))
        found, stats = rows_of(name, model, resolutions, hf_outputs)
        arrays |= found
        rows |= stats
        print(name, stats, flush=True)
    np.savez(target / "outputs.npz", **arrays)
    (target / "rows.json").write_text(json.dumps(rows, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="tests/tools/golden")
    parser.add_argument("--real_sizes", help="also write full-size RAD-DINO and Phikon "
                        "layouts into this folder (jaxtl.convert_weights.verify_libraries)")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    torch.set_num_threads(2)
    if args.real_sizes:
        real_sizes(pathlib.Path(args.real_sizes))
    arrays, meta = {}, {"rows": {}, "digests": {}, "configs": {}, "manifests": {}}
    vit = test_vit_state(out)
    trunk = {k: v for k, v in vit.items() if not k.startswith("head.")}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = pathlib.Path(tmp_name)
        # Hugging Face ViTModel (Phikon's layout)
        weights = synthetic_layouts.hf_from_timm(trunk, "vit")
        model, meta["configs"]["hf_vit"] = hf_model("hf_vit", HF_VIT, weights, tmp)
        meta["digests"]["hf_vit"] = synthetic.digest(weights)
        found, stats = rows_of("hf_vit", model, (160,), hf_outputs)
        arrays |= found
        meta["rows"] |= stats
        # Hugging Face Dinov2Model (RAD-DINO's layout)
        reference = timm.create_model("vit_base_patch14_dinov2", pretrained=False, num_classes=0,
                                      **DINOV2_TIMM)
        manifest = [(k, list(v.shape)) for k, v in reference.state_dict().items()]
        state = synthetic.synthetic_state_dict(manifest, NORM_SCALE)
        weights = synthetic_layouts.hf_from_timm(state, "dinov2")
        model, meta["configs"]["hf_dinov2"] = hf_model("hf_dinov2", HF_DINOV2, weights, tmp)
        meta["manifests"]["hf_dinov2"] = manifest
        meta["norm_scales"] = {"hf_dinov2": NORM_SCALE}
        meta["digests"]["hf_dinov2"] = synthetic.digest(weights)
        found, stats = rows_of("hf_dinov2", model, DINOV2_RESOLUTIONS, hf_outputs)
        arrays |= found
        meta["rows"] |= stats
        # open_clip with a timm image tower (BiomedCLIP's layout)
        (tmp / "test-clip.json").write_text(json.dumps(OPEN_CLIP))
        open_clip.add_model_config(tmp / "test-clip.json")
        clip = open_clip.create_model("test-clip", pretrained=None).eval()
        manifest = [(k, list(v.shape)) for k, v in clip.state_dict().items()]
        weights = synthetic_layouts.open_clip_from_timm(trunk, manifest)
        clip.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v))
                              for k, v in weights.items()}, strict=True)
        if any(not np.array_equal(v.numpy(), weights[k]) for k, v in clip.state_dict().items()):
            raise SystemExit("open_clip holds other tensors than the file's")
        meta["configs"]["open_clip"] = {"model_cfg": OPEN_CLIP,
                                        "preprocess_cfg": OPEN_CLIP_PREPROCESS}
        meta["manifests"]["open_clip"] = manifest
        meta["digests"]["open_clip"] = synthetic.digest(weights)

        def trunk_features(model, x):
            with torch.no_grad():
                return {"pooled": model.visual.trunk(nchw(x)).numpy()}

        found, stats = rows_of("open_clip", clip, (160,), trunk_features)
        arrays |= found
        meta["rows"] |= stats
        # big_vision / AugReg .npz, read by timm's loader
        for kind, big_vision in (("augreg_npz", False), ("big_vision_npz", True)):
            npz = synthetic_layouts.big_vision_from_timm(vit, HEADS, big_vision=big_vision)
            np.savez(tmp / f"{kind}.npz", **npz)
            model = timm.create_model("test_vit", pretrained=False, num_classes=1000,
                                      dynamic_img_size=True, dynamic_img_pad=True).eval()
            model.load_pretrained(str(tmp / f"{kind}.npz"))  # vision_transformer._load_weights
            for name, value in model.state_dict().items():
                if not np.array_equal(value.numpy(), vit[name]):
                    raise SystemExit(f"timm's .npz loader put other values into {name}")
            meta["digests"][kind] = synthetic.digest(npz)
            with torch.no_grad():
                arrays[f"{kind}/r160/logits"] = model(nchw(images(160)[0])).numpy()
    meta["dinov2_resampling_gap_518_to_224"] = dinov2_resampling_gap()
    meta["versions"] = {"transformers": transformers.__version__,
                        "open_clip": open_clip.__version__, "timm": timm.__version__,
                        "torch": torch.__version__, "numpy": np.__version__}
    np.savez_compressed(out / "libraries.npz", **arrays)
    (out / "libraries.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    for name, row in meta["rows"].items():
        print(f"{name}: max |pooled| {row['max_abs']:.3g}, sensitivity {row['sensitivity']:.3g}")
    print(f"Dinov2 vs timm resampling, 37 -> 16: {meta['dinov2_resampling_gap_518_to_224']:.3g}")


if __name__ == "__main__":
    main()
