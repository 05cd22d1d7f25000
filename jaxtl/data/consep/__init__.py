"""CoNSeP (colorectal nuclear segmentation and phenotypes): nucleus types from patches.

reader.py   Train/ and Test/ tiles and .mat labels -> nucleus-centred patches (cached once)
            and their split by patch or by tile
demo.py     synthetic H&E tiles with .mat annotations in the download's layout
spec.py     config section, rules, checks, the DatasetSpec
"""

from jaxtl.data.consep.spec import SPEC

DATASETS = (SPEC,)
