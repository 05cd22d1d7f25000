"""`jaxtl.conversion.timm_export`, the timm layout in reverse: for every architecture
with golden timm files, the state dict timm saved (its names and torch shapes, the golden
manifests) converted to jaxtl and written back is timm's again, name for name and shape for
shape, values unchanged. A run exported and converted back: tests/engine/test_lora_runs.py."""

from __future__ import annotations

import gzip
import json
import pathlib

import numpy as np
import pytest
from flax import traverse_util

from jaxtl.conversion.errors import ConversionError
from jaxtl.conversion.timm_export import timm_entries, timm_state_dict
from jaxtl.conversion.timm_layout import convertible_architectures, jaxtl_leaf

GOLDEN = pathlib.Path(__file__).parents[1] / "tools" / "golden"
with gzip.open(GOLDEN / "manifests.json.gz", "rt") as _file:
    MANIFESTS = {arch: manifest for arch, manifest in json.load(_file).items()
                 if arch in convertible_architectures()}  # not torchvision's legacy names


SMALL = 1 << 20  # values compared below this many elements; larger: names and shapes only


def numbered(manifest) -> dict[str, np.ndarray]:
    """Each timm tensor filled with distinct numbers, so that a transposition shows (a large
    one left unfilled: np.empty touches no memory, and the views below copy nothing)."""
    return {key: (np.arange(np.prod(shape), dtype=np.float32).reshape(shape) / 7
                  if np.prod(shape) < SMALL else np.empty(shape, np.float32))
            for key, shape in manifest}


def as_jaxtl(arch: str, state: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    flat: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state.items():
        collection, path, array = jaxtl_leaf(key, value, arch)
        flat.setdefault(collection, {})[path] = array
    return flat


@pytest.mark.parametrize("arch", sorted(MANIFESTS))
def test_timm_names_and_layouts_come_back(arch):
    state = numbered(MANIFESTS[arch])
    back = {}
    for collection, leaves in as_jaxtl(arch, state).items():
        for path, value in leaves.items():
            back |= timm_entries(arch, collection, path, value)
    tracked = {key for key in back if key.endswith(".num_batches_tracked")}
    assert tracked == {key.replace(".running_mean", ".num_batches_tracked")
                       for key in state if key.endswith(".running_mean")}
    assert set(back) - tracked == set(state)
    for key, value in state.items():
        assert back[key].shape == value.shape, key
        if value.size < SMALL:
            np.testing.assert_array_equal(back[key], value, err_msg=key)


@pytest.mark.parametrize("arch", ["test_vit", "resnet18"])
def test_the_state_dict_is_float32_with_an_int64_batch_count(arch):
    state = numbered(MANIFESTS[arch])
    variables = {collection: traverse_util.unflatten_dict(leaves, sep="/")
                 for collection, leaves in as_jaxtl(arch, state).items()}
    back = timm_state_dict(arch, variables)
    for key, value in back.items():
        assert value.dtype == (np.int64 if key.endswith("num_batches_tracked") else np.float32)
        assert value.flags.c_contiguous
    assert all(np.array_equal(back[key], value) for key, value in state.items())


def test_a_leaf_outside_backbone_and_classifier_is_refused():
    with pytest.raises(ConversionError, match="neither in the backbone nor the classifier"):
        timm_entries("resnet18", "params", "decoder/up1/kernel", np.zeros((3, 3, 4, 4)))
