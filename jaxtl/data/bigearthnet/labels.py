"""BigEarthNet label nomenclatures: the 43 CORINE Land Cover level-3 classes of the
BigEarthNet-S2 v1.0 metadata, and the 19-class nomenclature of Sumbul et al. (2021,
"BigEarthNet-MM", arXiv 2105.07921) into which they are merged.

The 43 names are spelled exactly as in the `labels` lists of the `<patch>_labels_metadata.json`
files (e.g. "Natural grassland", "Peatbogs", "Transitional woodland/shrub"), in the order of
the published `label_indices.json` (CORINE code order). The 19 names and their order are those of
the same file. The mapping is the published `label_conversion` table; 11 classes have no 19-class
counterpart and are dropped (a patch keeps its other labels).
"""

from __future__ import annotations

from collections.abc import Iterable

from jaxtl.core.errors import DataError

LABELS_43 = (
    "Continuous urban fabric",
    "Discontinuous urban fabric",
    "Industrial or commercial units",
    "Road and rail networks and associated land",
    "Port areas",
    "Airports",
    "Mineral extraction sites",
    "Dump sites",
    "Construction sites",
    "Green urban areas",
    "Sport and leisure facilities",
    "Non-irrigated arable land",
    "Permanently irrigated land",
    "Rice fields",
    "Vineyards",
    "Fruit trees and berry plantations",
    "Olive groves",
    "Pastures",
    "Annual crops associated with permanent crops",
    "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas",
    "Broad-leaved forest",
    "Coniferous forest",
    "Mixed forest",
    "Natural grassland",
    "Moors and heathland",
    "Sclerophyllous vegetation",
    "Transitional woodland/shrub",
    "Beaches, dunes, sands",
    "Bare rock",
    "Sparsely vegetated areas",
    "Burnt areas",
    "Inland marshes",
    "Peatbogs",
    "Salt marshes",
    "Salines",
    "Intertidal flats",
    "Water courses",
    "Water bodies",
    "Coastal lagoons",
    "Estuaries",
    "Sea and ocean",
)

LABELS_19 = (
    "Urban fabric",
    "Industrial or commercial units",
    "Arable land",
    "Permanent crops",
    "Pastures",
    "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas",
    "Broad-leaved forest",
    "Coniferous forest",
    "Mixed forest",
    "Natural grassland and sparsely vegetated areas",
    "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland, shrub",
    "Beaches, dunes, sands",
    "Inland wetlands",
    "Coastal wetlands",
    "Inland waters",
    "Marine waters",
)

# 19-class name -> the 43-class names merged into it (the published label_conversion).
_MERGES = {
    "Urban fabric": ("Continuous urban fabric", "Discontinuous urban fabric"),
    "Industrial or commercial units": ("Industrial or commercial units",),
    "Arable land": ("Non-irrigated arable land", "Permanently irrigated land", "Rice fields"),
    "Permanent crops": ("Vineyards", "Fruit trees and berry plantations", "Olive groves",
                        "Annual crops associated with permanent crops"),
    "Pastures": ("Pastures",),
    "Complex cultivation patterns": ("Complex cultivation patterns",),
    LABELS_19[6]: (LABELS_43[20],),  # "Land principally occupied by agriculture, ..."
    "Agro-forestry areas": ("Agro-forestry areas",),
    "Broad-leaved forest": ("Broad-leaved forest",),
    "Coniferous forest": ("Coniferous forest",),
    "Mixed forest": ("Mixed forest",),
    "Natural grassland and sparsely vegetated areas": ("Natural grassland",
                                                       "Sparsely vegetated areas"),
    "Moors, heathland and sclerophyllous vegetation": ("Moors and heathland",
                                                       "Sclerophyllous vegetation"),
    "Transitional woodland, shrub": ("Transitional woodland/shrub",),
    "Beaches, dunes, sands": ("Beaches, dunes, sands",),
    "Inland wetlands": ("Inland marshes", "Peatbogs"),
    "Coastal wetlands": ("Salt marshes", "Salines"),
    "Inland waters": ("Water courses", "Water bodies"),
    "Marine waters": ("Coastal lagoons", "Estuaries", "Sea and ocean"),
}

# 43-class name -> 19-class name, or None for the classes the 19-class nomenclature drops.
TO_19: dict[str, str | None] = {name: None for name in LABELS_43} | {
    source: target for target, sources in _MERGES.items() for source in sources}
DROPPED = tuple(name for name in LABELS_43 if TO_19[name] is None)
NOMENCLATURES = {"labels19": LABELS_19, "labels43": LABELS_43}


def multi_hot(labels: Iterable[str], nomenclature: str, where: str) -> tuple[int, ...]:
    """0/1 per label of `nomenclature` ('labels19' or 'labels43') for a patch's 43-class
    labels; `where` names the patch in errors."""
    names = NOMENCLATURES[nomenclature]
    present = set()
    for label in labels:
        if label not in TO_19:
            raise DataError(f"{where}: {label!r} is not one of the 43 BigEarthNet-S2 labels "
                            f"(CORINE level 3 as spelled in the v1.0 metadata)")
        target = label if nomenclature == "labels43" else TO_19[label]
        if target is not None:
            present.add(target)
    return tuple(int(name in present) for name in names)
