"""EyePACS (Kaggle Diabetic Retinopathy Detection): 5 grades per fundus photograph.

reader.py   trainLabels.csv (+ the Kaggle test labels) -> patient-wise splits
graham.py   Ben Graham's preprocessing of the winning Kaggle entry
demo.py     synthetic fundus photographs in the Kaggle layout
spec.py     config section, rules, checks, the DatasetSpec
"""

from jaxtl.data.eyepacs.spec import SPEC

DATASETS = (SPEC,)
