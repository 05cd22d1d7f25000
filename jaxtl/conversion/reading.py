"""Reading weight files into {name: float32 NumPy array}, without running anyone's code.

`.safetensors` is read with the safetensors library (no torch). `.pth`/`.bin`/`.pt` need torch
and are read with `torch.load(..., weights_only=True)`, which refuses anything but tensors and
plain containers: a whole pickled model is rejected with instructions, never unpickled.
`.npz` is read with `allow_pickle=False`.
"""

from __future__ import annotations

import json
import pathlib
import struct
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxtl.conversion.errors import ConversionError

TORCH_SUFFIXES = (".pth", ".bin", ".pt")
# Keys under which training scripts nest the state dict (timm's own `clean_state_dict` order).
NESTED_KEYS = ("state_dict", "model", "state_dict_ema", "model_ema")


def read_weights(path: str | pathlib.Path) -> dict[str, np.ndarray]:
    """All tensors of a .safetensors / .pth / .bin / .pt / .npz file as float32 NumPy arrays."""
    path = pathlib.Path(path).expanduser()
    if not path.is_file():
        raise ConversionError(f"--weights {path} does not exist or is not a file")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        tensors = read_safetensors(path)
    elif suffix in TORCH_SUFFIXES:
        tensors = read_torch(path)
    elif suffix == ".npz":
        tensors = read_npz(path)
    else:
        raise ConversionError(f"--weights {path}: unknown file type {suffix!r}; expected "
                              f".safetensors, {', '.join(TORCH_SUFFIXES)} or .npz")
    if tensors and all(name.startswith("module.") for name in tensors):  # DataParallel
        tensors = {name[len("module."):]: value for name, value in tensors.items()}
    return {name: np.asarray(value, np.float32) if np.issubdtype(value.dtype, np.floating)
            else np.asarray(value) for name, value in tensors.items()}


def read_npz(path: pathlib.Path) -> dict[str, np.ndarray]:
    """The arrays of a NumPy .npz archive (never unpickled)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise ConversionError(f"--weights {path} is not a readable .npz archive of arrays "
                              f"({error})") from None


def read_safetensors(path: pathlib.Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(path)
    except (SafetensorError, TypeError, ValueError) as error:
        if "bf16" not in str(error).lower() and "bfloat16" not in str(error).lower():
            raise ConversionError(f"--weights {path} is not a readable .safetensors file: "
                                  f"{error}") from error
    return _read_safetensors_bf16(path)


def _read_safetensors_bf16(path: pathlib.Path) -> dict[str, np.ndarray]:
    """The safetensors layout read by hand, for bfloat16 files that NumPy cannot name."""
    import ml_dtypes

    dtypes = {"BF16": ml_dtypes.bfloat16, "F16": np.float16, "F32": np.float32,
              "F64": np.float64, "I64": np.int64, "I32": np.int32, "U8": np.uint8}
    data = path.read_bytes()
    (header_size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_size])
    body = memoryview(data)[8 + header_size:]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if entry["dtype"] not in dtypes:
            raise ConversionError(f"--weights {path}: tensor {name} has dtype {entry['dtype']}, "
                                  f"which jaxtl cannot read")
        start, end = entry["data_offsets"]
        tensors[name] = np.frombuffer(body[start:end], dtypes[entry["dtype"]]).reshape(
            entry["shape"]).astype(np.float32)
    return tensors


def check_torch_file(path: pathlib.Path) -> None:
    """A ConversionError for a PyTorch file that is empty or cut short: torch's zip format
    (torch.save since 1.6) keeps its table of contents at the end, so a truncated download is
    a `PK` file that is no readable zip archive."""
    with open(path, "rb") as file:
        start = file.read(4)
    if not start:
        raise ConversionError(f"--weights {path} is empty: download or copy it again")
    if start.startswith(b"PK") and not zipfile.is_zipfile(path):
        raise ConversionError(f"--weights {path} is truncated or damaged (a PyTorch archive "
                              f"without its end, e.g. an interrupted download): download or "
                              f"copy it again")


def read_torch(path: pathlib.Path) -> dict[str, np.ndarray]:
    check_torch_file(path)
    try:
        import torch
    except ImportError as error:
        raise ConversionError(
            f"--weights {path} is a PyTorch file, which needs torch to read; install torch "
            f"(`pip install torch`) or convert the file to .safetensors where torch is "
            f"installed (safetensors.torch.save_file(state_dict, 'weights.safetensors'))"
        ) from error
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError or RuntimeError variants
        if "weights_only" not in str(error):  # not a refused object: a damaged file
            raise ConversionError(f"--weights {path} cannot be read by torch.load "
                                  f"({type(error).__name__}: {_first_line(error)}): it is "
                                  f"truncated or damaged; download or copy it again") from None
        raise ConversionError(
            f"--weights {path} holds more than tensors (e.g. a whole model saved with "
            f"torch.save(model), as torchxrayvision's .pt files are), and jaxtl never unpickles "
            f"arbitrary objects. Where that model's code is installed, save its state dict: "
            f"torch.save(model.state_dict(), 'weights.pth'). ({type(error).__name__}: "
            f"{_first_line(error)})") from error
    state = unwrap_state_dict(loaded, path)
    return {name: value.detach().float().numpy() if value.is_floating_point()
            else value.detach().numpy() for name, value in state.items()}


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else ""


def unwrap_state_dict(loaded: Any, path: pathlib.Path) -> Mapping[str, Any]:
    """The state dict inside a training checkpoint."""
    for key in NESTED_KEYS:
        if isinstance(loaded, Mapping) and isinstance(loaded.get(key), Mapping):
            loaded = loaded[key]
            break
    if not isinstance(loaded, Mapping) or not all(hasattr(v, "shape") for v in loaded.values()):
        raise ConversionError(f"--weights {path} is not a state dict (name -> tensor) nor a "
                              f"checkpoint holding one under {', '.join(NESTED_KEYS)}")
    return loaded
