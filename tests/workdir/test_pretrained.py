"""The converted-checkpoint folder (`jaxtl.workdir.pretrained`): what it holds on disk, read
back as written, and one line saying what to do when a file is damaged."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from jaxtl.core.errors import TransferError
from jaxtl.workdir import pretrained

INFO = pretrained.PretrainedInfo(arch="resnet18", num_classes=2, in_channels=1, resolution=64,
                                 mean=(0.5,), std=(0.25,), source={"kind": "test"})
VARIABLES = {"params": {"backbone": {"conv1": {"kernel": np.arange(6.0).reshape(1, 2, 3, 1)}},
                        "head": {"fc": {"bias": np.array([1, 2], np.int32)}}},
             "batch_stats": {"backbone": {"bn1": {"mean": np.zeros(3, np.float16)}}},
             "intermediates": {"ignored": np.zeros(1)}}


def test_a_folder_holds_float32_arrays_under_joined_names_and_its_json(tmp_path):
    folder = pretrained.save_pretrained(tmp_path / "ckpt", INFO, VARIABLES)
    stored = load_file(folder / pretrained.VARIABLES_FILE)
    assert sorted(stored) == ["batch_stats/backbone/bn1/mean", "params/backbone/conv1/kernel",
                              "params/head/fc/bias"]
    assert all(array.dtype == np.float32 for array in stored.values())
    meta = json.loads((folder / pretrained.PRETRAINED_FILE).read_text())
    assert (meta["format"], meta["format_version"]) == ("jaxtl-pretrained", 1)
    assert pretrained.read_info(folder) == INFO
    read = pretrained.read_variables(folder)
    np.testing.assert_array_equal(read["params"]["backbone"]["conv1"]["kernel"],
                                  VARIABLES["params"]["backbone"]["conv1"]["kernel"])
    np.testing.assert_array_equal(read["params"]["head"]["fc"]["bias"], [1.0, 2.0])
    pretrained.check_variables(folder)


def test_damaged_files_say_to_convert_again_or_to_delete_a_hub_conversion(tmp_path):
    own = pretrained.save_pretrained(tmp_path / "own", INFO, VARIABLES)
    hub = pretrained.save_pretrained(
        tmp_path / pretrained.HUB_CACHE_SUBDIR / f"timm--resnet18-{'0' * 20}", INFO, VARIABLES)
    assert not pretrained.is_converted_here(own) and pretrained.is_converted_here(hub)
    for folder in (own, hub):
        file = folder / pretrained.VARIABLES_FILE
        file.write_bytes(file.read_bytes()[:-10])
    with pytest.raises(TransferError, match=r"truncated or damaged .*convert the weights again"):
        pretrained.check_variables(own)
    with pytest.raises(TransferError, match=rf"truncated or damaged .*delete {hub}: the next run"):
        pretrained.read_variables(hub)
    (own / pretrained.PRETRAINED_FILE).write_text(json.dumps({"format": "other"}))
    with pytest.raises(TransferError, match="is not a jaxtl-pretrained v1 file"):
        pretrained.read_info(own)
    (own / pretrained.VARIABLES_FILE).unlink()
    with pytest.raises(TransferError, match="no variables.safetensors: the conversion did not"):
        pretrained.read_variables(own)
