"""The Hugging Face, open_clip and big_vision converters against the libraries themselves.

tests/tools/golden/libraries.{json,npz} (written by `make_library_golden` with transformers,
open_clip and timm) hold each library's outputs for test-size models whose weights NumPy
regenerates here (digests checked): the files are rebuilt in the library's own layout,
converted, and jaxtl's pooled features and token grid must equal the library's within 1e-4.
"""

from __future__ import annotations

import functools
import json
import pathlib
import re

import jax
import numpy as np
import pytest
from safetensors.numpy import save_file

from jaxtl.conversion import big_vision as big_vision_conversion
from jaxtl.conversion import hf as hf_conversion
from jaxtl.conversion import open_clip as open_clip_conversion
from jaxtl.conversion.errors import ConversionError
from jaxtl.convert_weights import synthetic, synthetic_layouts
from jaxtl.convert_weights.verify import TOLERANCE, Golden, JaxtlRunner
from jaxtl.convert_weights.verify_libraries import backbone_features, differences
from jaxtl.engine import transfer
from jaxtl.models.taps import PRE_LOGITS
from jaxtl.workdir import pretrained

ROOT = pathlib.Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "tools" / "golden"
PARITY_DOC = ROOT / "docs" / "parity.md"
IMAGENET = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
fast_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})


@pytest.fixture(scope="module")
def golden() -> Golden:
    return Golden(GOLDEN)


@pytest.fixture(scope="module")
def library() -> tuple[dict, dict]:
    meta = json.loads((GOLDEN / "libraries.json").read_text())
    with np.load(GOLDEN / "libraries.npz") as z:
        return meta, {name: z[name] for name in z.files}


def checked(weights: dict[str, np.ndarray], kind: str, meta: dict) -> dict[str, np.ndarray]:
    assert synthetic.digest(weights) == meta["digests"][kind], f"{kind}: not the library's file"
    return weights


def vit_trunk(golden: Golden) -> dict[str, np.ndarray]:
    return {k: v for k, v in golden.state_dict("test_vit").items() if not k.startswith("head.")}


def hf_folder(tmp: pathlib.Path, kind: str, weights: dict, meta: dict,
              processor: dict | None = IMAGENET) -> pathlib.Path:
    folder = tmp / kind
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(meta["configs"][kind]))
    if processor is not None:
        (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    save_file(checked(weights, kind, meta), folder / "model.safetensors")
    return folder


def assert_matches(converted, kind: str, resolution: int, library, grid: bool = True):
    meta, arrays = library
    row = f"{kind}/r{resolution}"
    pooled_diff, grid_diff = differences(converted, resolution, arrays[f"{row}/pooled"],
                                         arrays[f"{row}/grid"] if grid else None, fast_jit)
    assert pooled_diff <= TOLERANCE and (grid_diff or 0.0) <= TOLERANCE, (pooled_diff, grid_diff)
    assert meta["rows"][row]["sensitivity"] > 100 * TOLERANCE  # the features follow the image


def test_hf_vit_phikon_layout_gives_transformers_features(golden, library, tmp_path):
    """ViTModel with its pooler and transformers' LayerNorm eps 1e-12 (Phikon's config)."""
    meta, _ = library
    weights = synthetic_layouts.hf_from_timm(vit_trunk(golden), "vit")
    folder = hf_folder(tmp_path, "hf_vit", weights, meta)
    converted = hf_conversion.convert(str(folder), str(tmp_path / "out"))
    info = pretrained.read_info(converted)
    assert (info.arch, info.num_classes, info.resolution, info.mean) == (
        "test_vit", 0, 160, tuple(IMAGENET["image_mean"]))
    assert (info.source["kind"], info.source["library"], info.source["layer_norm_eps"]) == (
        "hf_vit", "transformers", 1e-12)
    assert_matches(converted, "hf_vit", 160, library)


@pytest.mark.parametrize("resolution", [112, 56, 224])
def test_hf_dinov2_rad_dino_layout_gives_transformers_features(library, resolution, tmp_path):
    """Dinov2Model at its grid, shrunk and grown: jaxtl resamples the position embeddings as
    Dinov2Model does (pos_interp="dinov2"); timm's resampling would not give its features."""
    meta, arrays = library
    state = synthetic.synthetic_state_dict(meta["manifests"]["hf_dinov2"],
                                           meta["norm_scales"]["hf_dinov2"])
    folder = hf_folder(tmp_path, "hf_dinov2", synthetic_layouts.hf_from_timm(state, "dinov2"),
                       meta)
    converted = hf_conversion.convert(str(folder / "model.safetensors"), str(tmp_path / "out"))
    info = pretrained.read_info(converted)
    assert (info.arch, info.num_classes, info.resolution) == ("test_vit_patch14_dinov2", 0, 112)
    assert_matches(converted, "hf_dinov2", resolution, library)
    if resolution != 112:
        _, timm_resampled = backbone_features(converted, resolution, fast_jit,
                                              {"pos_interp": "timm"})
        gap = np.abs(np.asarray(timm_resampled[PRE_LOGITS])
                     - arrays[f"hf_dinov2/r{resolution}/pooled"]).max()
        print(f"timm's resampling at {resolution} px: {gap:.3g} from Dinov2Model")
        assert gap > 10 * TOLERANCE


def test_open_clip_timm_tower_gives_the_trunks_features(golden, library, tmp_path):
    """BiomedCLIP's layout: the trunk converts, the text tower and projection are left out."""
    meta, _ = library
    weights = synthetic_layouts.open_clip_from_timm(vit_trunk(golden),
                                                    meta["manifests"]["open_clip"])
    assert "visual.head.proj.weight" in weights and "logit_scale" in weights
    save_file(checked(weights, "open_clip", meta), tmp_path / "open_clip_model.safetensors")
    (tmp_path / "open_clip_config.json").write_text(json.dumps(meta["configs"]["open_clip"]))
    converted = open_clip_conversion.convert(str(tmp_path / "open_clip_model.safetensors"),
                                             str(tmp_path / "out"))
    info = pretrained.read_info(converted)
    preprocess = meta["configs"]["open_clip"]["preprocess_cfg"]
    assert (info.arch, info.num_classes, info.resolution, info.mean, info.std) == (
        "test_vit", 0, 160, tuple(preprocess["mean"]), tuple(preprocess["std"]))
    assert info.source["library"] == "open_clip" and "visual.head" in info.source["dropped"]
    assert set(transfer.load_variables(converted)["params"]) == {"backbone"}
    assert_matches(converted, "open_clip", 160, library, grid=False)


@pytest.mark.parametrize("kind", ["augreg_npz", "big_vision_npz"])
def test_big_vision_npz_gives_timms_logits(golden, library, kind, tmp_path):
    """AugReg and big_vision naming, each loaded in the golden script by timm's .npz loader."""
    meta, arrays = library
    npz = synthetic_layouts.big_vision_from_timm(golden.state_dict("test_vit"), 2,
                                                 big_vision=kind == "big_vision_npz")
    np.savez(tmp_path / "ViT-test.npz", **checked(npz, kind, meta))
    converted = big_vision_conversion.convert(str(tmp_path / "ViT-test.npz"), str(tmp_path / "out"))
    info = pretrained.read_info(converted)
    assert (info.arch, info.num_classes, info.resolution, info.mean) == (
        "test_vit", 1000, 160, (0.5, 0.5, 0.5))
    got = JaxtlRunner(converted, jit=fast_jit).logits(synthetic.synthetic_input(160, 3))
    assert np.abs(got - arrays[f"{kind}/r160/logits"]).max() <= TOLERANCE


# --- Refusals: one line each ------------------------------------------------------------------

def test_hf_config_that_fits_no_architecture_is_refused(library, tmp_path):
    meta, _ = library
    config = meta["configs"]["hf_vit"]
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConversionError, match=r"does not fit --arch vit_small_patch16_224: "
                                              r"embed_dim 64 \(architecture: 384\)"):
        hf_conversion.convert(str(folder), str(tmp_path / "out"), arch="vit_small_patch16_224")
    (folder / "config.json").write_text(json.dumps(config | {"num_hidden_layers": 5}))
    with pytest.raises(ConversionError, match="no jaxtl ViT has its layout"):
        hf_conversion.convert(str(folder), str(tmp_path / "out"))
    for change, message in (({"model_type": "dinov2_with_registers"}, "model_type"),
                            ({"hidden_act": "gelu_new"}, "exact GELU"),
                            ({"layer_norm_eps": 1e-5}, "larger eps")):
        (folder / "config.json").write_text(json.dumps(config | change))
        with pytest.raises(ConversionError, match=message):
            hf_conversion.convert(str(folder), str(tmp_path / "out"))
    dinov2 = meta["configs"]["hf_dinov2"] | {"use_swiglu_ffn": True}
    (folder / "config.json").write_text(json.dumps(dinov2))
    with pytest.raises(ConversionError, match="SwiGLU"):
        hf_conversion.convert(str(folder), str(tmp_path / "out"))


def test_hf_folder_without_statistics_or_weights_is_refused(golden, library, tmp_path):
    meta, _ = library
    weights = synthetic_layouts.hf_from_timm(vit_trunk(golden), "vit")
    folder = hf_folder(tmp_path, "hf_vit", weights, meta, processor=None)
    with pytest.raises(ConversionError, match="no preprocessor_config.json .* give --mean"):
        hf_conversion.convert(str(folder), str(tmp_path / "out"))
    (folder / "model.safetensors").unlink()
    with pytest.raises(ConversionError, match="holds none of model.safetensors"):
        hf_conversion.convert(str(folder), str(tmp_path / "out"), mean=[0.5] * 3, std=[0.5] * 3)


def test_dinov2_image_classifier_is_refused(library, tmp_path):
    meta, _ = library
    state = synthetic.synthetic_state_dict(meta["manifests"]["hf_dinov2"],
                                           meta["norm_scales"]["hf_dinov2"])
    folder = hf_folder(tmp_path, "hf_dinov2", synthetic_layouts.hf_from_timm(state, "dinov2"),
                       meta)
    weights = synthetic_layouts.hf_from_timm(state, "dinov2") | {
        "classifier.weight": np.zeros((5, 128), np.float32)}
    save_file(weights, folder / "model.safetensors")
    with pytest.raises(ConversionError, match="Dinov2ForImageClassification"):
        hf_conversion.convert(str(folder), str(tmp_path / "out"))


def test_hf_attention_without_all_three_projections_is_refused(golden):
    weights = synthetic_layouts.hf_from_timm(vit_trunk(golden), "vit")
    del weights["encoder.layer.3.attention.attention.key.bias"]
    with pytest.raises(ConversionError, match=r"encoder.layer.3.attention.attention has "
                                              r"query, value bias but not all"):
        hf_conversion.timm_state(weights)


def test_open_clip_without_a_timm_tower_or_with_avg_pooling_is_refused(library, tmp_path):
    meta, _ = library
    with pytest.raises(ConversionError, match="OpenAI-style image tower"):
        open_clip_conversion.trunk_state(
            {"visual.conv1.weight": np.zeros((8, 3, 4, 4), np.float32)})
    save_file({"visual.trunk.cls_token": np.zeros((1, 1, 64), np.float32)},
              tmp_path / "clip.safetensors")
    config = meta["configs"]["open_clip"]
    config = config | {"model_cfg": config["model_cfg"] | {
        "vision_cfg": config["model_cfg"]["vision_cfg"] | {"timm_pool": "avg"}}}
    (tmp_path / "open_clip_config.json").write_text(json.dumps(config))
    with pytest.raises(ConversionError, match="timm_pool 'avg'"):
        open_clip_conversion.convert(str(tmp_path / "clip.safetensors"), str(tmp_path / "out"))


def test_big_vision_npz_layouts_jaxtl_lacks_are_refused(golden):
    npz = synthetic_layouts.big_vision_from_timm(golden.state_dict("test_vit"), 2)
    for extra, message in (({"pre_logits/kernel": np.zeros((64, 64))}, "pre_logits"),
                           ({"MAPHead_0/probe": np.zeros((1, 1, 64))}, "MAPHead"),
                           ({"Transformer/encoderblock/LayerNorm_0/scale": np.zeros((6, 64))},
                            "stacked")):
        with pytest.raises(ConversionError, match=message):
            big_vision_conversion.timm_state(npz | extra)
    without_cls = {k: v for k, v in npz.items() if k != "cls"}
    with pytest.raises(ConversionError, match="no class token"):
        big_vision_conversion.timm_state(without_cls)


def test_parity_page_lists_the_library_rows_within_tolerance(library):
    meta, _ = library
    text = PARITY_DOC.read_text()
    rows = re.findall(r"^\| (\w+) \| [^|]+ \| (\d+) px \| ([\d.e+-]+) \|", text, re.M)
    wanted = {tuple(row.split("/r")) for row in meta["rows"]} | {
        (kind, "160") for kind in ("augreg_npz", "big_vision_npz")}
    kinds = {kind for kind, _ in wanted}
    table = {(kind, res) for kind, res, _ in rows if kind in kinds}
    assert table == wanted
    assert all(float(diff) <= TOLERANCE for _, _, diff in rows)  # full-size rows too


def test_published_configs_pick_the_zoo_architectures():
    """The layouts of RAD-DINO's and Phikon's config.json (their size keys, written out here)
    and BiomedCLIP's vision_cfg name the architectures docs/models.md gives for them."""
    from jaxtl.conversion.vit_match import pick_architecture, vit_architectures

    rad_dino = {"model_type": "dinov2", "hidden_size": 768, "num_hidden_layers": 12,
                "num_attention_heads": 12, "mlp_ratio": 4, "patch_size": 14, "image_size": 518,
                "layerscale_value": 1.0, "layer_norm_eps": 1e-6, "use_swiglu_ffn": False,
                "qkv_bias": True, "hidden_act": "gelu"}
    phikon = {"model_type": "vit", "hidden_size": 768, "num_hidden_layers": 12,
              "num_attention_heads": 12, "intermediate_size": 3072, "patch_size": 16,
              "image_size": 224, "layer_norm_eps": 1e-12, "qkv_bias": True}
    assert pick_architecture(hf_conversion.vit_config(rad_dino), None, "rad-dino") == \
        "vit_base_patch14_dinov2"
    assert pick_architecture(hf_conversion.vit_config(phikon), None, "phikon") == \
        "vit_base_patch16_224"
    assert vit_architectures()["vit_base_patch16_224"].img_size == 224  # BiomedCLIP's trunk


@pytest.mark.slow
def test_command_line_converters_write_a_checkpoint_or_refuse_in_one_line(golden, library,
                                                                         tmp_path):
    import subprocess
    import sys

    meta, _ = library
    folder = hf_folder(tmp_path, "hf_vit",
                       synthetic_layouts.hf_from_timm(vit_trunk(golden), "vit"), meta)
    command = [sys.executable, "-m", "jaxtl.convert_weights.hf", "--weights", str(folder),
               "--out", str(tmp_path / "out")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "test_vit: no classifier (backbone only), 3 input channel(s), 160 px" in done.stdout
    done = subprocess.run([*command, "--arch", "vit_small_patch16_224"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("error: ")
    assert len(done.stderr.strip().splitlines()) == 1 and "embed_dim 64" in done.stderr
