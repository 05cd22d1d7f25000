"""What results.json records about the environment: package versions and the platform."""

from __future__ import annotations

import importlib.metadata
import platform
import sys

import jax

from jaxtl.core import provenance


def test_versions_are_the_installed_distributions():
    versions = provenance.environment()["versions"]
    assert set(versions) == {"jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain",
                             "numpy", "scipy", "scikit-learn", "pillow"}
    for name, version in versions.items():
        assert version == importlib.metadata.version(name)
    assert versions["jax"] == jax.__version__
    assert versions["numpy"] == __import__("numpy").__version__


def test_a_missing_distribution_is_recorded_as_none(monkeypatch):
    monkeypatch.setattr(provenance, "RECORDED_PACKAGES", ("jax", "no-such-distribution"))
    assert provenance.package_versions() == {"jax": jax.__version__,
                                             "no-such-distribution": None}


def test_platform_names_python_machine_and_devices():
    record = provenance.environment()["platform"]
    assert record["python"] == "{}.{}.{}".format(*sys.version_info[:3])
    assert record["machine"] == platform.machine()
    assert record["jax_backend"] == jax.devices()[0].platform
    assert record["device_kind"] == jax.devices()[0].device_kind
    assert record["device_count"] == len(jax.devices())
    assert record["process_count"] == 1
