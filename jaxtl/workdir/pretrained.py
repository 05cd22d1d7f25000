"""A converted pretrained checkpoint on disk: a folder with `pretrained.json` (`PretrainedInfo`)
and `variables.safetensors` (float32 arrays under '/'-joined names, `collection/path`).

The converters (`jaxtl.conversion`, `python -m jaxtl.convert_weights.*`) and `python -m
jaxtl.export` write it (`save_pretrained`); `jaxtl.engine.transfer` reads it (`read_info`,
`read_variables`) as a run's starting point. Anything unreadable is one TransferError line
saying what to do: convert again, or, for a folder converted from the Hugging Face hub into
jaxtl's cache (`is_converted_here`), delete it so that the next run converts it again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import pathlib
import re
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
from flax import traverse_util

from jaxtl.core import atomic
from jaxtl.core.errors import TransferError
from jaxtl.data.cache import KEY_LENGTH

COLLECTIONS = ("params", "batch_stats")
PRETRAINED_FILE = "pretrained.json"
VARIABLES_FILE = "variables.safetensors"
FORMAT = "jaxtl-pretrained"
FORMAT_VERSION = 1
HUB_CACHE_SUBDIR = "hf-hub"  # hub conversions in jaxtl's cache folder: <ORG>--<NAME>-<key>


@dataclasses.dataclass(frozen=True)
class PretrainedInfo:
    """`pretrained.json`: what a converted checkpoint holds and what input it expects.

    `mean`/`std` (per channel, on the 0..1 pixel scale) and `resolution` are the input the
    weights were trained with: set `data.mean`, `data.std` (and ideally `data.resolution`) to
    them when fine-tuning. `source` records where the weights came from (file, sha256, kind).
    """

    arch: str
    num_classes: int
    in_channels: int
    resolution: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: dict[str, Any]
    head: str = "linear"

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION,
                           **dataclasses.asdict(self)}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, where: pathlib.Path) -> PretrainedInfo:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise TransferError(f"{where} is not valid JSON ({error}): the checkpoint is "
                                f"damaged; {convert_again(where.parent)}") from None
        if not isinstance(data, dict):
            raise TransferError(f"{where} holds no JSON object: the checkpoint is damaged; "
                                f"{convert_again(where.parent)}")
        if data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
            raise TransferError(f"{where} is not a {FORMAT} v{FORMAT_VERSION} file (format "
                                f"{data.get('format')!r} v{data.get('format_version')!r}); "
                                f"convert the weights again with jaxtl.convert_weights")
        fields = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(fields - set(data) - {"head"})
        if missing:
            raise TransferError(f"{where} lacks {', '.join(missing)}")
        values = {k: v for k, v in data.items() if k in fields}
        return cls(**values | {"mean": tuple(values["mean"]), "std": tuple(values["std"])})


def is_converted_here(folder: pathlib.Path) -> bool:
    """A folder converted from the hub into jaxtl's cache (so deleting it makes the next run
    convert it again)."""
    return (folder.parent.name == HUB_CACHE_SUBDIR
            and re.fullmatch(rf".+--.+-[0-9a-f]{{{KEY_LENGTH}}}", folder.name) is not None)


def convert_again(folder: pathlib.Path) -> str:
    """What to do about a damaged converted checkpoint `folder`."""
    if is_converted_here(folder):
        return f"delete {folder}: the next run converts it again"
    return (f"convert the weights again into {folder} (python -m jaxtl.convert_weights.timm "
            f"or .bit)")


def save_pretrained(directory: str | pathlib.Path, info: PretrainedInfo,
                    variables: Mapping[str, Any]) -> pathlib.Path:
    """Writes `pretrained.json` + `variables.safetensors` (float32, '/'-joined names)."""
    from safetensors.numpy import save_file

    directory = pathlib.Path(directory).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    flat = {f"{collection}/{name}": np.ascontiguousarray(np.asarray(value, np.float32))
            for collection in COLLECTIONS if collection in variables
            for name, value in traverse_util.flatten_dict(variables[collection], sep="/").items()}
    save_file(flat, directory / VARIABLES_FILE, metadata={"format": FORMAT})
    atomic.write_text(directory / PRETRAINED_FILE, info.to_json())
    return directory


def read_info(folder: str | pathlib.Path) -> PretrainedInfo:
    """The `pretrained.json` of converted checkpoint `folder`."""
    file = pathlib.Path(folder).expanduser() / PRETRAINED_FILE
    try:
        text = file.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise TransferError(f"{file} cannot be read ({error}); "
                            f"{convert_again(file.parent)}") from None
    return PretrainedInfo.from_json(text, file)


@contextlib.contextmanager
def _variables_file(folder: pathlib.Path) -> Iterator[pathlib.Path]:
    """`folder`'s variables file, any failure to read it inside the block made one line."""
    from safetensors import SafetensorError

    file = folder / VARIABLES_FILE
    if not file.is_file():
        raise TransferError(f"{folder} has {PRETRAINED_FILE} but no {VARIABLES_FILE}: the "
                            f"conversion did not finish; {convert_again(folder)}")
    try:
        yield file
    except (SafetensorError, OSError, ValueError) as error:
        raise TransferError(f"{file} cannot be read ({_first_line(error)}): it is truncated or "
                            f"damaged (an interrupted copy?); {convert_again(folder)}") from None


def check_variables(folder: pathlib.Path) -> None:
    """The variables file is there and whole (its header read, its size checked against it)."""
    from safetensors import safe_open

    with _variables_file(folder) as file, safe_open(file, framework="np"):
        pass


def read_variables(folder: pathlib.Path) -> dict[str, Any]:
    """{'params': ..., 'batch_stats': ...} of converted checkpoint `folder`, as NumPy."""
    from safetensors.numpy import load_file

    with _variables_file(folder) as file:
        tensors = load_file(file)
    flat: dict[str, dict[str, np.ndarray]] = {}
    for name, value in tensors.items():
        collection, rest = name.split("/", 1)
        flat.setdefault(collection, {})[rest] = value
    return {collection: traverse_util.unflatten_dict(leaves, sep="/")
            for collection, leaves in flat.items()}


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
