"""Chest X-rays: CheXpert and NIH ChestX-ray14, multi-label findings with label policies.

chexpert.py, cxr14.py   the downloads' label files -> one table (table.py)
labels.py               label names, tasks, uncertainty and empty-cell policies, the mapping
                        between the two datasets
reader.py               views, patient-wise or official splits, encoded labels -> records
demo.py                 synthetic radiographs in both layouts
spec.py                 the shared `chest` config section, rules, checks, the two DatasetSpecs
"""

from jaxtl.data.chest.spec import CHEXPERT, CXR14

DATASETS = (CHEXPERT, CXR14)
