"""`--config.model.init=hf-hub:ORG/NAME`: the Hugging Face cache read offline, converted once into
jaxtl's cache, and every broken file one line (exit code 2) naming it and what to do.

The hub cache is written by the tests as huggingface_hub lays it out
(`models--ORG--NAME/refs/main`, `snapshots/<commit>/<file>` linking into `blobs/`), holding a
timm repository of the tiny `test_vit` with the synthetic timm weights of the converter's parity
tests (tools/convert_weights/synthetic.py, from the golden manifests). Nothing downloads:
HF_HUB_OFFLINE is set and HF_HOME points into tmp_path.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import shutil
import zipfile

import numpy as np
import pytest
from conftest import REPO
from programs import run_programs

from jaxtl.conversion import timm as timm_conversion
from jaxtl.conversion.errors import ConversionError
from jaxtl.convert_weights import synthetic
from jaxtl.convert_weights.verify import Golden
from jaxtl.core.errors import TransferError
from jaxtl.engine import hub, transfer
from jaxtl.workdir import pretrained

ARCH = "test_vit"
REPO_ID = "timm/test_vit.r160_in1k"
INIT = f"hf-hub:{REPO_ID}"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
MEAN, STD, RESOLUTION = (0.1, 0.2, 0.3), (0.4, 0.5, 0.6), 48
TIMM_CONFIG = {"architecture": ARCH, "num_classes": 1000, "num_features": 64,
               "pretrained_cfg": {"tag": "r160_in1k", "input_size": [3, RESOLUTION, RESOLUTION],
                                  "mean": list(MEAN), "std": list(STD)}}


@pytest.fixture(scope="module")
def timm_state() -> dict[str, np.ndarray]:
    golden = Golden(REPO / "tests" / "tools" / "golden")
    return synthetic.synthetic_state_dict(golden.manifests[ARCH])


def safetensors_bytes(state: dict[str, np.ndarray], folder: pathlib.Path) -> bytes:
    from safetensors.numpy import save_file

    save_file(state, folder / "staged.safetensors")
    data = (folder / "staged.safetensors").read_bytes()
    (folder / "staged.safetensors").unlink()
    return data


def write_hub_cache(hf_home: pathlib.Path, files: dict[str, bytes | None],
                    commit: str = COMMIT) -> pathlib.Path:
    """huggingface_hub's cache layout of REPO_ID at `commit` (refs/main points at it); a file
    given as None is a link to a blob that is not there (an interrupted download)."""
    repo = hf_home / "hub" / f"models--{REPO_ID.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    for name, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data or name.encode()).hexdigest()
        if data is not None:
            blob.write_bytes(data)
        (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))
    return snapshot


@pytest.fixture
def offline_hub(tmp_path, monkeypatch) -> pathlib.Path:
    """HF_HOME in tmp_path, offline, for this process (huggingface_hub read both on import)."""
    from huggingface_hub import constants

    hf_home = tmp_path / "hf"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return hf_home


def timm_repo_files(state: dict[str, np.ndarray], folder: pathlib.Path) -> dict[str, bytes]:
    return {"config.json": json.dumps(TIMM_CONFIG).encode(),
            "model.safetensors": safetensors_bytes(state, folder)}


def test_a_hub_model_converts_once_into_jaxtls_cache(tmp_path, offline_hub, timm_state,
                                                     monkeypatch):
    write_hub_cache(offline_hub, timm_repo_files(timm_state, tmp_path))
    folder = transfer.local(INIT, tmp_path / "cache")
    assert folder.parent == tmp_path / "cache" / pretrained.HUB_CACHE_SUBDIR
    info = pretrained.read_info(folder)
    assert (info.arch, info.resolution, info.mean, info.std) == (ARCH, RESOLUTION, MEAN, STD)
    assert info.source["hub"] == REPO_ID and info.source["revision"] == COMMIT
    assert info.source["library"] == "timm" and info.source["file"] == "model.safetensors"
    variables = transfer.load_variables(folder)
    # timm's Linear weight (out, in) is a Flax Dense kernel (in, out); conv weights OIHW -> HWIO
    np.testing.assert_array_equal(variables["params"]["backbone"]["blocks_5"]["mlp"]["fc2"]
                                  ["kernel"], timm_state["blocks.5.mlp.fc2.weight"].T)
    np.testing.assert_array_equal(
        variables["params"]["backbone"]["patch_embed"]["proj"]["kernel"],
        timm_state["patch_embed.proj.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(variables["params"]["head"]["fc"]["bias"],
                                  timm_state["head.bias"])

    def no_second_conversion(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(timm_conversion, "convert", no_second_conversion)
    assert transfer.local(INIT, tmp_path / "cache") == folder
    assert transfer.local(f"{INIT}@{COMMIT}", tmp_path / "cache") == folder


def test_another_commit_of_the_repository_is_another_converted_folder(tmp_path, offline_hub,
                                                                      timm_state):
    files = timm_repo_files(timm_state, tmp_path)
    write_hub_cache(offline_hub, files)
    first = transfer.local(INIT, tmp_path / "cache")
    newer = {name: value * 1.5 for name, value in timm_state.items()}
    write_hub_cache(offline_hub, timm_repo_files(newer, tmp_path), commit="f" * 40)
    second = transfer.local(INIT, tmp_path / "cache")
    assert second != first and pretrained.read_info(second).source["revision"] == "f" * 40
    np.testing.assert_allclose(transfer.load_variables(second)["params"]["head"]["fc"]["bias"],
                               timm_state["head.bias"] * 1.5)


def test_a_damaged_converted_folder_is_deleted_and_converted_again(tmp_path, offline_hub,
                                                                   timm_state):
    write_hub_cache(offline_hub, timm_repo_files(timm_state, tmp_path))
    folder = transfer.local(INIT, tmp_path / "cache")
    variables = folder / pretrained.VARIABLES_FILE
    variables.write_bytes(variables.read_bytes()[:1000])
    with pytest.raises(TransferError, match=rf"{variables} cannot be read .*: it is truncated or "
                                            rf"damaged .*; delete {folder}: the next run converts "
                                            r"it again$"):
        transfer.load_variables(INIT, tmp_path / "cache")
    shutil.rmtree(folder)
    assert transfer.local(INIT, tmp_path / "cache") == folder
    np.testing.assert_array_equal(transfer.load_variables(folder)["params"]["head"]["fc"]["bias"],
                                  timm_state["head.bias"])
    # a folder of the user's own, even one called pretrained/, is converted again by hand
    own = tmp_path / "pretrained" / "resnet50"
    own.mkdir(parents=True)
    (own / pretrained.VARIABLES_FILE).write_bytes(b"")
    with pytest.raises(TransferError, match=rf"; convert the weights again into {own} "):
        transfer.load_variables(own)


def test_a_broken_config_json_beside_the_weights_is_named(tmp_path, timm_state):
    (tmp_path / "model.safetensors").write_bytes(safetensors_bytes(timm_state, tmp_path))
    (tmp_path / "config.json").write_text('{"architecture": "test_vit", "pretrained_cfg": {')
    with pytest.raises(ConversionError, match=rf"^{tmp_path / 'config.json'} \(beside --weights\) "
                                              r"is not valid JSON \(.*\): download it again"):
        timm_conversion.convert(ARCH, str(tmp_path / "model.safetensors"), str(tmp_path / "out"))


def test_timm_architectures_map_to_jaxtls_or_are_refused_in_one_line():
    assert timm_conversion.hub_arch({"architecture": "resnet50"}) == "resnet50"
    assert (timm_conversion.hub_arch({"architecture": "vit_base_patch16_224"})
            == "vit_base_patch16_224")
    assert timm_conversion.hub_arch({"architecture": "vit_base_patch16_224",
                                     "model_args": {"global_pool": "avg"}}) == \
        "vit_base_patch16_224_avg"
    # UNI's config.json (MahmoodLab/UNI): LayerScale, and arguments the name or the head state
    uni = {"img_size": 224, "patch_size": 16, "init_values": 1e-5, "num_classes": 0,
           "dynamic_img_size": True}
    assert timm_conversion.hub_arch({"architecture": "vit_large_patch16_224",
                                     "model_args": uni}) == "vit_large_patch16_224_ls"
    with pytest.raises(ConversionError, match=r"^timm's vit_large_patch16_224 with .*'patch_size"
                                              r"': 14.* is not an architecture jaxtl has"):
        timm_conversion.hub_arch({"architecture": "vit_large_patch16_224",
                                  "model_args": {**uni, "patch_size": 14}})
    with pytest.raises(ConversionError, match=r"^timm's swin_tiny_patch4_window7_224 is not an "
                                              r"architecture jaxtl has; convertible: .*resnet50"):
        timm_conversion.hub_arch({"architecture": "swin_tiny_patch4_window7_224"})


def test_references_that_are_not_repositories_are_refused():
    for init in ("hf-hub:resnet50", "hf-hub:timm/resnet50/extra", "hf-hub:timm/x@bad rev"):
        with pytest.raises(TransferError, match="expected hf-hub:ORG/NAME or"):
            hub.parse(init)
    assert hub.parse("hf-hub:timm/resnet50.a1_in1k@main") == hub.Reference(
        "timm/resnet50.a1_in1k", "main")


def test_offline_without_the_files_says_which_is_missing_and_how_to_convert(
        tmp_path, offline_hub, timm_state):
    with pytest.raises(TransferError) as nothing:
        transfer.local(INIT, tmp_path / "cache")
    assert str(nothing.value).startswith(
        f"model.init={INIT}: config.json or open_clip_config.json is not in the Hugging Face "
        f"cache")
    assert ("HF_HUB_OFFLINE=1 allows no download" in str(nothing.value)
            and f"python -m jaxtl.convert_weights.timm --arch {ARCH} --weights model.safetensors "
                "--out DIR, then --config.model.init=DIR" in str(nothing.value))
    write_hub_cache(offline_hub, {"config.json": json.dumps(TIMM_CONFIG).encode()})
    with pytest.raises(TransferError, match=r"model.safetensors or pytorch_model.bin is not in "
                                            r"the Hugging Face cache \(.*snapshots/" + COMMIT):
        transfer.local(INIT, tmp_path / "cache")


def test_a_repository_in_another_layout_is_refused_naming_those_jaxtl_converts(
        tmp_path, offline_hub):
    write_hub_cache(offline_hub, {"config.json": json.dumps({"architectures": ["ViTModel"]})
                                  .encode()})
    with pytest.raises(TransferError, match=rf"^model.init={INIT}: its config.json is not in a "
                                            r"layout jaxtl converts \(timm: config.json \+ "
                                            r"model.safetensors or pytorch_model.bin, "
                                            r"transformers: config.json \+ model.safetensors, "
                                            r"open_clip: open_clip_config.json \+ "
                                            r"open_clip_model.safetensors or "
                                            r"open_clip_pytorch_model.bin\)$"):
        transfer.local(INIT, tmp_path / "cache")


def test_a_missing_blob_is_named_as_an_interrupted_download(tmp_path, offline_hub):
    snapshot = write_hub_cache(offline_hub, {"config.json": json.dumps(TIMM_CONFIG).encode(),
                                             "model.safetensors": None})
    with pytest.raises(TransferError, match=rf"{snapshot / 'model.safetensors'} links to a file "
                                            r"that is not there \(an interrupted download\)"):
        transfer.local(INIT, tmp_path / "cache")


# --- The real program: one line, exit code 2, no traceback -------------------------------------

def run_args(workdir: pathlib.Path, cache: pathlib.Path, init: str) -> list[str]:
    return ["--config", "configs/eyepacs.py", "--workdir", str(workdir),
            f"--config.data.cache_dir={cache}", f"--config.model.init={init}",
            f"--config.demo.arch={ARCH}", "--config.demo.resolution=32",
            "--config.demo.num_patients=40", "--config.demo.image_size=48",
            "--config.data.num_workers=0", "--config.demo.batch_size=8"]


def test_broken_files_stop_the_program_with_one_line(tmp_path, timm_state):
    """Each broken file of a start from pretrained weights: exit code 2, one line naming the
    file and what to do, no traceback, and no run folder left."""
    hf_home = tmp_path / "hf"
    write_hub_cache(hf_home, {"config.json": json.dumps(TIMM_CONFIG).encode(),
                              "model.safetensors": None})
    checkpoint = Golden(REPO / "tests" / "tools" / "golden").timm_checkpoint(ARCH, tmp_path)
    good = timm_conversion.convert(ARCH, str(checkpoint), str(tmp_path / "good"))
    damaged = {}
    for name in ("truncated", "no_info", "no_variables", "not_json"):
        damaged[name] = tmp_path / name
        damaged[name].mkdir()
        for file in good.iterdir():
            (damaged[name] / file.name).write_bytes(file.read_bytes())
    variables = damaged["truncated"] / pretrained.VARIABLES_FILE
    variables.write_bytes(variables.read_bytes()[:5])
    (damaged["no_info"] / pretrained.PRETRAINED_FILE).unlink()
    (damaged["no_variables"] / pretrained.VARIABLES_FILE).unlink()
    (damaged["not_json"] / pretrained.PRETRAINED_FILE).write_text('{"format": "jaxtl-pre')
    pth = tmp_path / "cut.pth"
    with zipfile.ZipFile(pth, "w") as archive:  # torch.save's layout, cut before its end
        archive.writestr("cut/data.pkl", b"\x80\x02" + bytes(200))
        archive.writestr("cut/data/0", np.ones(64, np.float32).tobytes())
    pth.write_bytes(pth.read_bytes()[:-30])

    env = {"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}
    cache = tmp_path / "cache"
    commands = [("jaxtl.main", run_args(tmp_path / f"run_{name}", cache, str(folder)), env)
                for name, folder in damaged.items()]
    commands += [("jaxtl.main", run_args(tmp_path / "run_hub", cache, INIT), env),
                 ("jaxtl.main", run_args(tmp_path / "run_other", cache, "hf-hub:timm/other"),
                  env),
                 ("jaxtl.convert_weights.timm", ["--arch", ARCH, "--weights", str(pth),
                                                 "--out", str(tmp_path / "out")], env)]
    expected = [
        (rf"{variables} cannot be read \(.*\): it is truncated or damaged .*convert the weights "
         rf"again into {damaged['truncated']}"),
        (rf"model.init={damaged['no_info']} has variables.safetensors but no pretrained.json: the "
         r"conversion did not finish"),
        (rf"{damaged['no_variables']} has pretrained.json but no variables.safetensors: the "
         r"conversion did not finish"),
        (rf"{damaged['not_json'] / pretrained.PRETRAINED_FILE} is not valid JSON \(.*\): the "
         r"checkpoint is damaged"),
        (rf"model.init={INIT}: .*/model.safetensors links to a file that is not there \(an "
         r"interrupted download\): download it again"),
        (r"model.init=hf-hub:timm/other: config.json or open_clip_config.json is not in the "
         r"Hugging Face cache \(.*\) and "
         r"HF_HUB_OFFLINE=1 allows no download: .* python -m jaxtl.convert_weights.timm --arch "
         r"ARCH --weights model.safetensors --out DIR"),
        rf"--weights {pth} is truncated or damaged \(a PyTorch archive without its end",
    ]
    for run, pattern in zip(run_programs(commands), expected, strict=True):
        lines = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
        assert run.returncode == 2 and not run.traceback, (run.command, run.stderr[-2000:])
        assert len(lines) == 1, run.stderr[-2000:]
        assert re.match("error: " + pattern, lines[0]), lines[0]
    assert not any(path.name.startswith("run_") for path in tmp_path.iterdir())


def test_a_transformers_repository_converts_with_its_preprocessing(tmp_path, offline_hub):
    """A ViTModel repository (Phikon's layout): config.json names its model_type, the weights
    are in transformers' names, preprocessor_config.json gives the mean and std."""
    from jaxtl.convert_weights import synthetic_layouts

    golden = Golden(REPO / "tests" / "tools" / "golden")
    meta = json.loads((REPO / "tests" / "tools" / "golden" / "libraries.json").read_text())
    trunk = {name: value for name, value in golden.state_dict(ARCH).items()
             if not name.startswith("head.")}
    processor = {"image_mean": list(MEAN), "image_std": list(STD)}
    write_hub_cache(offline_hub, {
        "config.json": json.dumps(meta["configs"]["hf_vit"]).encode(),
        "preprocessor_config.json": json.dumps(processor).encode(),
        "model.safetensors": safetensors_bytes(synthetic_layouts.hf_from_timm(trunk, "vit"),
                                               tmp_path)})
    info = pretrained.read_info(transfer.local(INIT, tmp_path / "cache"))
    assert (info.arch, info.num_classes, info.mean, info.std) == (ARCH, 0, MEAN, STD)
    assert info.source["library"] == "transformers"
    variables = transfer.load_variables(transfer.local(INIT, tmp_path / "cache"))
    np.testing.assert_array_equal(
        variables["params"]["backbone"]["patch_embed"]["proj"]["kernel"],
        trunk["patch_embed.proj.weight"].transpose(2, 3, 1, 0))
