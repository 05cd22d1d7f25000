"""What an install puts in place: jaxtl with every subpackage (dataset packages included, with
no list to keep), tools/convert_weights/ as jaxtl.convert_weights, and no other top-level name
(no `configs`, no `tools`)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_the_build_holds_jaxtl_and_the_converters_and_nothing_else(tmp_path):
    # build_py copies exactly the files a wheel or an install takes, without building one
    subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(tmp_path)],
                   cwd=ROOT, check=True, capture_output=True, timeout=120)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["jaxtl"]
    built = {path.relative_to(tmp_path / "jaxtl").as_posix()
             for path in (tmp_path / "jaxtl").rglob("*.py")}
    sources = {path.relative_to(ROOT / "jaxtl").as_posix()
               for path in (ROOT / "jaxtl").rglob("*.py")}
    converters = {f"convert_weights/{path.name}"
                  for path in (ROOT / "tools" / "convert_weights").glob("*.py")}
    assert built == sources | converters
