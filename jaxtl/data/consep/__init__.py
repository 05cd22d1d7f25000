"""CoNSeP (colorectal nuclear segmentation and phenotypes): nucleus types from patches, and
nuclei segmented in whole tiles.

reader.py        Train/ and Test/ tiles and .mat labels -> nucleus-centred patches (cached
                 once) and their split by patch or by tile
demo.py          synthetic H&E tiles with .mat annotations in the download's layout
spec.py          `consep`: config section, rules, checks, the DatasetSpec
segmentation.py  tiles with their instance and type maps (cached once), pixel classes, the
                 random training crops (flips, 90-degree turns, stain jitter)
seg_spec.py      `consep_seg`: the segmentation DatasetSpec
"""

from jaxtl.data.consep.seg_spec import SPEC as SEGMENTATION_SPEC
from jaxtl.data.consep.spec import SPEC

DATASETS = (SPEC, SEGMENTATION_SPEC)
