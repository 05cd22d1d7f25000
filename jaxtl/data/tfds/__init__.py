"""TensorFlow Datasets prepared as ArrayRecord, read without TensorFlow (extra: '.[tfds]').

source.py        the one module importing tensorflow_datasets: builders, label scans, examples
decode.py        decoders of TFDS examples (Image features, BigEarthNet band features)
retinopathy.py   diabetic_retinopathy_detection: grades, patients from names, splits
bigearthnet.py   bigearthnet (rgb, all): 43 / 19 labels, seeded or official-list splits
chexpert.py      chexpert: the 14 observations into jaxtl's chest tables and policies
demo.py          tiny demo datasets prepared by TFDS from jaxtl's synthetic data
spec.py          the three DatasetSpecs (tfds_retinopathy, tfds_bigearthnet, tfds_chexpert)
"""

from jaxtl.data.tfds.spec import BIGEARTHNET, CHEXPERT, RETINOPATHY

DATASETS = (RETINOPATHY, BIGEARTHNET, CHEXPERT)
