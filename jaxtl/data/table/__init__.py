"""Your own images: a table (CSV) or class folders, with every feature of the built-in datasets.

rows.py       image rows -> classes or labels (chest policies), group-wise or fixed splits
csv_file.py   a CSV table: path, class or label columns, group and split columns
folders.py    class folders: root/<class>/<image>
demo.py       synthetic fundus photographs in both forms
spec.py       the `csv` and `folders` sections, rules, checks, decoders and specs
"""

from jaxtl.data.table.spec import CSV, FOLDERS

DATASETS = (CSV, FOLDERS)
