"""BigEarthNet-S2 v1.0: multi-label land cover from Sentinel-2 band stacks.

reader.py   split lists and label files -> records (labels cached once)
bands.py    band sets, published statistics, the band-stack decoder
labels.py   the 43 CORINE names and the published 19-class merge
demo.py     synthetic GeoTIFF patches in the archive's layout
spec.py     config section, rules, checks, the DatasetSpec
"""

from jaxtl.data.bigearthnet.spec import SPEC

DATASETS = (SPEC,)
