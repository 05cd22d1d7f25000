"""requirements.lock pins every dependency pyproject.toml declares (the package and its test
extra, with the extras that extra names) to one exact version inside the declared range."""

from __future__ import annotations

import pathlib
import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from jaxtl.core import provenance

REPO = pathlib.Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;#]+)\s*(;[^#]*)?(#.*)?$")


def locked() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for number, line in enumerate(LOCK.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"requirements.lock line {number} is not an exact pin: {line!r}"
        name = canonicalize_name(match["name"])
        assert name not in pins, f"{name} is pinned twice"
        pins[name] = Version(match["version"])
    return pins


def declared() -> list[Requirement]:
    """The core dependencies and the test extra, the extras of jaxtl it names expanded."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    pending = [Requirement(text) for text in project["dependencies"] + extras["test"]]
    requirements = []
    while pending:
        requirement = pending.pop()
        if canonicalize_name(requirement.name) == canonicalize_name(project["name"]):
            pending += [Requirement(text) for extra in requirement.extras
                        for text in extras[extra]]
        else:
            requirements.append(requirement)
    return requirements


def test_every_declared_dependency_has_an_exact_pin_in_its_range():
    pins = locked()
    requirements = declared()
    assert {"jax", "tensorflow-datasets", "pytest", "sphinx"} <= {
        canonicalize_name(r.name) for r in requirements}
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in requirements.lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {name}=={pins[name]}, outside pyproject.toml's {requirement}")


def test_the_versions_results_record_are_locked():
    pins = locked()
    assert {canonicalize_name(name) for name in provenance.RECORDED_PACKAGES} <= set(pins)


def test_a_loose_pin_is_refused():
    for line in ("numpy>=1.26", "numpy", "numpy~=2.4"):
        assert PIN.match(line) is None
    assert PIN.match("uvloop==0.23.0 ; sys_platform != 'win32'  # via orbax-checkpoint")
