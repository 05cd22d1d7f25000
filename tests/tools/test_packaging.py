"""pyproject.toml lists every package: tools/convert_weights/ installs as jaxtl.convert_weights,
which setuptools' package discovery cannot find, so the list is written out."""

from __future__ import annotations

import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_is_listed():
    folders = {".".join(init.parent.relative_to(ROOT).parts)
               for top in ("jaxtl", "configs") for init in (ROOT / top).rglob("__init__.py")}
    assert set(_setuptools()["packages"]) == folders | {"jaxtl.convert_weights"}


def test_converters_install_inside_jaxtl_and_nothing_as_tools():
    setuptools = _setuptools()
    assert setuptools["package-dir"] == {"jaxtl.convert_weights": "tools/convert_weights"}
    assert (ROOT / "tools" / "convert_weights" / "__init__.py").is_file()
    assert not (ROOT / "tools" / "__init__.py").exists()
    assert not any(package.split(".")[0] == "tools" for package in setuptools["packages"])
