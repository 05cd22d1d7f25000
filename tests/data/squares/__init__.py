"""Squares and circles: a dataset package written outside jaxtl, by the recipe of
docs/ARCHITECTURE.md ("Add a dataset"), to prove that one package plus one config file is all
a new dataset needs (tests/data/test_dataset_package.py).

reader.py   labels.csv -> patient-wise splits
demo.py     synthetic images in that layout
spec.py     the config settings and the DatasetSpec
"""

from squares.spec import SPEC

DATASETS = (SPEC,)
