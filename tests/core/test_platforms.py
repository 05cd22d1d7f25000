from __future__ import annotations

import os

import jax
import pytest

from jaxtl.core import platforms


@pytest.fixture
def restored_platforms(monkeypatch):
    monkeypatch.delenv(platforms.PLATFORMS_VARIABLE, raising=False)
    before = jax.config.jax_platforms
    yield
    jax.config.update("jax_platforms", before)


@pytest.mark.parametrize("libtpu, tpu, chosen", [(True, True, ""), (False, False, ""),
                                                 (True, False, "cuda")])
def test_an_installed_libtpu_is_left_alone_where_a_tpu_is_or_the_user_chose(
        monkeypatch, restored_platforms, libtpu, tpu, chosen):
    monkeypatch.setattr(platforms, "libtpu_installed", lambda: libtpu)
    monkeypatch.setattr(platforms, "tpu_attached", lambda: tpu)
    if chosen:
        monkeypatch.setenv(platforms.PLATFORMS_VARIABLE, chosen)
    assert platforms.skip_absent_tpu() is None


@pytest.mark.parametrize("gpu, expected", [(False, "cpu"), (True, "cuda,cpu")])
def test_without_a_tpu_the_other_platforms_are_chosen_for_this_process_and_its_children(
        monkeypatch, restored_platforms, gpu, expected):
    monkeypatch.setattr(platforms, "libtpu_installed", lambda: True)
    monkeypatch.setattr(platforms, "tpu_attached", lambda: False)
    monkeypatch.setattr(platforms, "gpu_platform_installed", lambda: gpu)
    updates = []
    monkeypatch.setattr(jax.config, "update", lambda name, value: updates.append((name, value)))
    assert platforms.skip_absent_tpu() == expected
    assert updates == [("jax_platforms", expected)]
    assert os.environ[platforms.PLATFORMS_VARIABLE] == expected

