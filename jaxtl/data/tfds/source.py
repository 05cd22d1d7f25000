"""Reading a TFDS-prepared dataset without TensorFlow: `tfds.data_source` over ArrayRecord.

A dataset that `tfds build` (or `builder.download_and_prepare(file_format="array_record")`)
prepared lies in `<data_dir>/<name>/<config>/<version>/`: `dataset_info.json`,
`features.json` and the ArrayRecord shards of every split. TFDS opens a split as a random-access
data source whose examples are NumPy dicts; this module is the only one that imports
`tensorflow_datasets` (the optional extra `pip install -e '.[tfds]'`).

Records point at examples: `Record.path` is `<version dir>#<split>#<index>`, the index in the
data source, so a decoder in a Grain worker opens the split once per process and reads only the
examples it is given. Label scans read every example of a split once (images are not decoded)
and are cached under `<cache_dir>/tfds/` with a key that covers the version folder, the split
and the dataset's `dataset_info.json`.
"""

from __future__ import annotations

import functools
import json
import pathlib
from collections.abc import Sequence
from typing import Any

from absl import logging

from jaxtl.core import atomic
from jaxtl.core.errors import ConfigError, DataError
from jaxtl.data.cache import keyed_path

INSTALL = "pip install -e '.[tfds]' (or pip install tensorflow-datasets)"
CACHE_VERSION = 1
_SCAN_CHUNK = 512


def tfds_module() -> Any:
    """`tensorflow_datasets`, or a ConfigError saying what to install."""
    try:
        import tensorflow_datasets
    except ImportError as error:
        raise ConfigError(f"reading TensorFlow Datasets needs the package tensorflow-datasets "
                          f"({error}); install it with {INSTALL}") from None
    return tensorflow_datasets


def installed() -> bool:
    try:
        tfds_module()
    except ConfigError:
        return False
    return True


def prepared_builder(name: str, data_dir: pathlib.Path) -> Any:
    """The TFDS builder of `name` ('dataset/config') prepared as ArrayRecord in `data_dir`."""
    tfds = tfds_module()
    if not data_dir.is_dir():
        raise DataError(f"TFDS data_dir {data_dir} does not exist; set --config.data.tfds_dir "
                        f"to the folder holding {name.split('/')[0]}/ as TFDS prepared it, or "
                        f"leave it empty for the demo data")
    try:
        builder = tfds.builder(name, data_dir=str(data_dir))
    except Exception as error:  # TFDS raises its own error types for unknown names
        raise DataError(f"TFDS cannot open {name!r} in {data_dir}: {error}") from None
    version_dir = pathlib.Path(str(builder.data_dir))
    if not (version_dir / "dataset_info.json").is_file():
        raise DataError(f"{name} is not prepared in {data_dir} ({version_dir}/dataset_info.json "
                        f"is missing); prepare it with: tfds build {name} --data_dir "
                        f"{data_dir} --file_format=array_record (add --manual_dir for datasets "
                        f"downloaded by hand)")
    file_format = builder.info.file_format
    if file_format is None or file_format.value != "array_record":
        found = file_format.value if file_format is not None else "tfrecord"
        raise DataError(
            f"{version_dir} was prepared as {found}, which has no random access; jaxtl reads "
            f"ArrayRecord. Convert it once (reading TFRecord needs TensorFlow): tfds "
            f"convert_format --dataset_version_dir={version_dir} "
            f"--out_file_format=array_record, or prepare it again with tfds build {name} "
            f"--data_dir {data_dir} --file_format=array_record")
    return builder


def image_features(builder: Any) -> tuple[str, ...]:
    """The top-level Image features of a builder (left encoded when scanning labels)."""
    tfds = tfds_module()
    return tuple(key for key, feature in builder.info.features.items()
                 if isinstance(feature, tfds.features.Image))


def skip_images(builder: Any) -> dict[str, Any]:
    tfds = tfds_module()
    return {key: tfds.decode.SkipDecoding() for key in image_features(builder)}


def record_path(builder: Any, split: str, index: int) -> str:
    return f"{builder.data_dir}#{split}#{index}"


def read_columns(builder: Any, split: str, features: Sequence[str],
                 cache_dir: pathlib.Path) -> dict[str, list]:
    """The values of `features` for every example of `split`, in data-source order (cached).

    Text becomes str, integers int, sequences lists; images are not decoded.
    """
    version_dir = pathlib.Path(str(builder.data_dir))
    if split not in builder.info.splits:
        raise DataError(f"{version_dir} has no split {split!r}; it has "
                        f"{', '.join(builder.info.splits)}")
    info_text = (version_dir / "dataset_info.json").read_text()
    cache = keyed_path(cache_dir, "tfds", {"version": CACHE_VERSION, "dir": str(version_dir),
                                            "split": split, "features": list(features),
                                            "info": info_text},
                       prefix="columns-", suffix=".json")
    if cache.is_file():
        return json.loads(cache.read_text())
    source = builder.as_data_source(split, decoders=skip_images(builder))
    logging.info("TFDS: reading %s of the %d examples of %s/%s (once; cached in %s)",
                 ", ".join(features), len(source), version_dir, split, cache)
    columns: dict[str, list] = {feature: [] for feature in features}
    for start in range(0, len(source), _SCAN_CHUNK):
        for example in source.__getitems__(range(start, min(start + _SCAN_CHUNK, len(source)))):
            for feature in features:
                columns[feature].append(_plain(example[feature]))
    atomic.write_json(cache, columns)
    return columns


def _plain(value: Any) -> Any:
    """A decoded TFDS value as JSON: bytes -> str, NumPy scalars and arrays -> Python."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@functools.lru_cache(maxsize=16)
def _data_source(version_dir: str, split: str) -> Any:
    """One data source per split and process (Grain workers open their own)."""
    tfds = tfds_module()
    builder = tfds.builder_from_directory(version_dir)
    return builder.as_data_source(split, decoders=skip_images(builder))


def example(path: str) -> dict[str, Any]:
    """The example a `Record.path` points at; images left encoded (bytes)."""
    version_dir, split, index = path.rsplit("#", 2)
    if not index.isdigit():
        raise DataError(f"{path!r} does not name a TFDS example as '<dir>#<split>#<index>'")
    try:
        return _data_source(version_dir, split)[int(index)]
    except (IndexError, OSError, ValueError) as error:
        raise DataError(f"{path}: the TFDS example cannot be read ({error}); prepare the "
                        f"dataset again") from error
