"""Which packages install: jaxtl's own (found, so a new dataset package needs no entry here) and
tools/convert_weights/ as jaxtl.convert_weights. Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

CONVERTERS = "jaxtl.convert_weights"

setup(packages=[*find_packages(include=["jaxtl", "jaxtl.*"]), CONVERTERS],
      package_dir={CONVERTERS: "tools/convert_weights"})
