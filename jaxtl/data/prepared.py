"""Prepared data: every image of a dataset decoded once, resized and stored in ArrayRecord shards.

`python -m jaxtl.commands.prepare` writes a folder; `data.prepared=DIR` trains and evaluates from it.

What a prepared folder holds:

- `shard-NNNNN.array_record`: ArrayRecord files (Grain's random-access format, group size 1),
  one record per image: a small JSON header (image id, patient, label, the image's key, shape
  and dtype, or the error that made it unreadable) followed by the raw pixels, (H, W, C) in the
  dtype that crosses to the device (`transforms.wire_dtype`: uint8 for 8-bit data, uint16 for
  16-bit data such as Sentinel-2 digital numbers). Raw pixels, not re-encoded: decoding a PNG or
  JPEG costs what preparing saves (benchmarks/README.md, "Prepared shards").
- `manifest.json`: the format version, the dataset, the source it was read from, the decoder's
  description and the settings that change pixels (`DatasetSpec.pixel_settings`), the stored
  size, the image ids in shard order, counts per split, unreadable images, and the SHA-256 of the
  records (ids, patients, labels) read from the label files.
- `plan.json`, written first: what is being prepared, so that a killed prepare resumes (finished
  shards are renamed into place whole and kept) and a folder of other data is refused.

Images keep their aspect ratio: the short side is resized down to the stored size (never up),
so a run at that resolution or below sees the same crops as from the original files. Labels
and splits still come from the label files under the dataset's location (small, read in
seconds): every label policy, split and sampling setting works without preparing again, and a
run's records are looked up in the manifest by image id; a record missing from it, another
dataset, decoder or format, or a stored size below the run's resolution is a clear error.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import multiprocessing
import os
import pathlib
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import ml_collections
import numpy as np
from PIL import Image

from jaxtl.core import atomic
from jaxtl.data import registry
from jaxtl.data.decoders import Decoder
from jaxtl.data.records import SPLITS, DataError, DatasetSplits, Record
from jaxtl.data.transforms import to_wire, wire_dtype

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
PLAN_FILE = "plan.json"
SHARD_FILE = "shard-{index:05d}.array_record"
RECORDS_PER_SHARD = 256
# group_size:1 gives each record its own chunk (random access, as Grain requires); pixels are
# stored raw, so compression would cost reading time for little space on photographs.
WRITER_OPTIONS = "group_size:1,uncompressed"
READER_OPTIONS = "readahead_buffer_size:0"
HEADER_BYTES = 4  # little-endian length of the JSON header that starts every record


# --- records ------------------------------------------------------------------------------------
def encode(header: dict[str, Any], pixels: np.ndarray | None) -> bytes:
    """One stored record: header length, JSON header (with shape and dtype), raw pixels."""
    if pixels is not None:
        pixels = np.ascontiguousarray(pixels)
        header = {**header, "shape": list(pixels.shape), "dtype": pixels.dtype.name}
    text = json.dumps(header).encode()
    return len(text).to_bytes(HEADER_BYTES, "little") + text + (
        pixels.tobytes() if pixels is not None else b"")


def decode(data: bytes) -> tuple[dict[str, Any], np.ndarray | None]:
    """(header, pixels or None for an unreadable image) of a stored record."""
    length = int.from_bytes(data[:HEADER_BYTES], "little")
    header = json.loads(data[HEADER_BYTES:HEADER_BYTES + length])
    if "shape" not in header:
        return header, None
    pixels = np.frombuffer(data, np.dtype(header["dtype"]), offset=HEADER_BYTES + length)
    return header, pixels.reshape(header["shape"])


def shrink(decoded: Image.Image | np.ndarray, size: int, dtype: str) -> np.ndarray:
    """A decoded image as (H, W, C) pixels of `dtype`, its short side resized down to `size`
    (Pillow's antialiased bilinear resize; arrays channel by channel in float32)."""
    if isinstance(decoded, Image.Image):
        width, height = decoded.size
    else:
        height, width = decoded.shape[:2]
    short = min(width, height)
    target = None
    if short > size:
        scale = size / short
        target = (size if width == short else max(size, round(width * scale)),
                  size if height == short else max(size, round(height * scale)))
    if isinstance(decoded, Image.Image):
        if target is not None:
            decoded = decoded.resize(target, Image.Resampling.BILINEAR)
        pixels = np.asarray(decoded)
        pixels = pixels[..., None] if pixels.ndim == 2 else pixels
        return pixels.astype(dtype, copy=False)
    planes = [decoded[..., c].astype(np.float32) for c in range(decoded.shape[-1])]
    if target is not None:
        planes = [np.asarray(Image.fromarray(p).resize(target, Image.Resampling.BILINEAR))
                  for p in planes]
    return to_wire(np.stack(planes, -1), dtype)


def label_json(label: Any) -> Any:
    """A record's label as JSON holds it (an int, or a list of ints)."""
    return np.asarray(label).tolist()


def records_digest(records: Iterable[Record]) -> str:
    """SHA-256 of what the label files said of each record: id, patient, label."""
    digest = hashlib.sha256()
    for record in records:
        digest.update(json.dumps([record.image_id, record.patient,
                                  label_json(record.label)]).encode() + b"\n")
    return digest.hexdigest()


# --- what is prepared ---------------------------------------------------------------------------
def pixel_settings(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The values of the settings that change a dataset's pixels (`DatasetSpec.pixel_settings`)."""
    values = {}
    for key in registry.get(config.dataset).pixel_settings:
        section, name = key.split(".")
        value = config[section][name]
        values[key] = list(value) if isinstance(value, tuple) else value
    return values


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a prepare writes: the records in shard order and how they are stored."""

    dataset: str
    source: str
    decoder: Decoder
    pixel_settings: dict[str, Any]
    stored_size: int
    records_per_shard: int
    records: tuple[Record, ...]
    counts: dict[str, int]
    digest: str

    @property
    def shards(self) -> int:
        return -(-len(self.records) // self.records_per_shard)

    def shard_records(self, index: int) -> tuple[Record, ...]:
        return self.records[index * self.records_per_shard:(index + 1) * self.records_per_shard]

    def description(self) -> dict[str, Any]:
        """What identifies the plan (plan.json); the manifest adds the results."""
        return {"format_version": FORMAT_VERSION, "dataset": self.dataset,
                "source": self.source, "decoder": repr(self.decoder),
                "pixel_settings": self.pixel_settings, "stored_size": self.stored_size,
                "pixel_dtype": wire_dtype(self.decoder), "channels": self.decoder.channels,
                "value_scale": self.decoder.value_scale, "kind": None,
                "records_per_shard": self.records_per_shard,
                "image_ids": [r.image_id for r in self.records],
                "records_sha256": self.digest, "counts": self.counts}


def make_plan(config: ml_collections.ConfigDict, splits: DatasetSplits, decoder: Decoder,
              source: str, stored_size: int,
              records_per_shard: int = RECORDS_PER_SHARD) -> Plan:
    """Every record of every split once (ids unique), in split order."""
    records: list[Record] = []
    seen: dict[str, Record] = {}
    for split in SPLITS:
        for record in splits.split(split):
            if (first := seen.get(record.image_id)) is not None:
                if first.path != record.path:
                    raise DataError(f"image id {record.image_id!r} names two images "
                                    f"({first.path} and {record.path}); prepared data is "
                                    f"looked up by image id, so ids must be unique")
                continue
            seen[record.image_id] = record
            records.append(record)
    return Plan(dataset=config.dataset, source=source, decoder=decoder,
                pixel_settings=pixel_settings(config), stored_size=stored_size,
                records_per_shard=records_per_shard, records=tuple(records),
                counts={split: len(splits.split(split)) for split in SPLITS},
                digest=records_digest(records))


# --- writing ------------------------------------------------------------------------------------
def shard_path(out: pathlib.Path, index: int) -> pathlib.Path:
    return out / SHARD_FILE.format(index=index)


_plan: Plan | None = None  # set in each prepare worker (fork)
_out: pathlib.Path | None = None


def _start(plan: Plan, out: pathlib.Path) -> None:
    global _plan, _out
    _plan, _out = plan, out


def _write_shard(index: int) -> tuple[int, int, list[str], str | None]:
    """Decodes, resizes and stores one shard under a temporary name, then renames it into
    place; returns (index, records, unreadable ids, kind of the decoded images)."""
    from array_record.python.array_record_module import ArrayRecordWriter

    assert _plan is not None and _out is not None
    plan, dtype = _plan, wire_dtype(_plan.decoder)
    final = shard_path(_out, index)
    temporary = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    unreadable, kind = [], None
    writer = ArrayRecordWriter(str(temporary), WRITER_OPTIONS)
    try:
        for record in plan.shard_records(index):
            header = {"image_id": record.image_id, "patient": record.patient,
                      "label": label_json(record.label)}
            try:
                decoded = plan.decoder.decode(record.path, plan.stored_size)
            except DataError as error:
                unreadable.append(record.image_id)
                writer.write(encode({**header, "error": str(error)}, None))
                continue
            kind = "pil" if isinstance(decoded, Image.Image) else "array"
            writer.write(encode({**header, "kind": kind},
                                shrink(decoded, plan.stored_size, dtype)))
    except BaseException:
        writer.close()
        temporary.unlink(missing_ok=True)
        raise
    writer.close()
    atomic.write_json(summary_path(final), {"records": len(plan.shard_records(index)),
                                            "unreadable": unreadable, "kind": kind})
    os.replace(temporary, final)
    return index, len(plan.shard_records(index)), unreadable, kind


def summary_path(shard: pathlib.Path) -> pathlib.Path:
    """What a finished shard holds (records, unreadable ids, kind), written before the shard is
    renamed into place, so a resumed prepare need not read the shard back."""
    return shard.with_name(shard.name + ".json")


def write(plan: Plan, out: pathlib.Path, *, workers: int,
          progress: Callable[[int, int], Any] | None = None) -> dict[str, Any]:
    """Writes (or finishes) the prepared folder `out` for `plan`; returns the manifest.

    `progress(done, total)` is told of every finished shard, in records. Shards already there
    from a killed prepare of the same plan are kept; a folder holding another plan is refused.
    """
    out.mkdir(parents=True, exist_ok=True)
    description = plan.description()
    plan_file = out / PLAN_FILE
    if plan_file.exists():
        if json.loads(plan_file.read_text()) != json.loads(json.dumps(description)):
            raise DataError(f"{out} holds a prepare of other data or settings (its {PLAN_FILE} "
                            f"differs); choose another --out or delete that folder")
    else:
        atomic.write_json(plan_file, description)
    for stray in out.glob(".shard-*.tmp"):
        stray.unlink(missing_ok=True)  # shards a killed prepare left half-written
    unreadable: dict[int, list[str]] = {}
    kinds: set[str] = set()
    todo = []
    for index in range(plan.shards):
        if shard_path(out, index).exists():
            summary = json.loads(summary_path(shard_path(out, index)).read_text())
            unreadable[index] = summary["unreadable"]
            kinds.update([summary["kind"]] if summary["kind"] else [])
        else:
            todo.append(index)
    done = sum(len(plan.shard_records(i)) for i in unreadable)
    if progress:
        progress(done, len(plan.records))
    if todo:
        # fork: workers share the plan and need no JAX (never started by a prepare)
        context = multiprocessing.get_context("fork")
        with context.Pool(max(1, min(workers, len(todo))), _start, (plan, out)) as pool:
            for index, count, bad, kind in pool.imap_unordered(_write_shard, todo):
                unreadable[index] = bad
                if kind:
                    kinds.add(kind)
                done += count
                if progress:
                    progress(done, len(plan.records))
    kind = _kind(plan, out, kinds)
    manifest = {**description, "kind": kind,
                "unreadable": [i for index in sorted(unreadable) for i in unreadable[index]],
                "shards": [shard_path(out, i).name for i in range(plan.shards)]}
    atomic.write_json(out / MANIFEST_FILE, manifest, indent=1)
    return manifest


def _kind(plan: Plan, out: pathlib.Path, kinds: set[str]) -> str:
    """'pil' (image files: the Pillow path of the transforms) or 'array' (the NumPy path), as the
    dataset's decoder returns them; taken from one readable image when every new shard had
    none."""
    if len(kinds) > 1:
        raise DataError(f"{plan.dataset}'s decoder returned both Pillow images and arrays")
    if kinds:
        return kinds.pop()
    for record in plan.records:
        try:
            decoded = plan.decoder.decode(record.path, plan.stored_size)
        except DataError:
            continue
        return "pil" if isinstance(decoded, Image.Image) else "array"
    raise DataError(f"none of the {len(plan.records)} images of {out} could be read")


# --- reading ------------------------------------------------------------------------------------
_readers: dict[tuple[int, str], Any] = {}
_readers_lock = threading.Lock()


def _reader(path: str) -> Any:
    """One ArrayRecord reader per shard and process (readers are thread-safe; Grain reads with
    threads)."""
    from array_record.python.array_record_module import ArrayRecordReader

    key = (os.getpid(), path)
    with _readers_lock:
        if key not in _readers:
            try:
                _readers[key] = ArrayRecordReader(path, READER_OPTIONS)
            except Exception as error:  # noqa: BLE001 - the reader raises several kinds
                raise DataError(f"{path} cannot be read as an ArrayRecord shard ({error}); "
                                f"prepare the data again") from error
        return _readers[key]


@dataclasses.dataclass(frozen=True)
class PreparedDecoder:
    """`Record.path` '<shard>#<position>' -> the stored pixels: a Pillow image when the
    dataset's own decoder gives one (kind 'pil', so the same Pillow transforms apply), else the
    (H, W, C) array. An image stored as unreadable raises its original error."""

    channels: int
    value_scale: float
    wire_dtype: str
    kind: str

    @property
    def gives_pillow_images(self) -> bool:
        return self.kind == "pil"

    def decode(self, path: str, resolution: int) -> Image.Image | np.ndarray:
        del resolution
        file, _, position = path.rpartition("#")
        header, pixels = decode(_reader(file).read([int(position)])[0])
        if pixels is None:
            raise DataError(header["error"])
        if self.kind == "pil":
            return Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
        return pixels


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    path = pathlib.Path(folder).expanduser() / MANIFEST_FILE
    if not path.is_file():
        raise DataError(f"data.prepared is {str(folder)!r}, which holds no {MANIFEST_FILE}: "
                        f"write it with `python -m jaxtl.commands.prepare --config CONFIG --out DIR` "
                        f"(a prepare that was stopped finishes when run again)")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DataError(f"{path} cannot be read ({error}); prepare the data again") from None


def check(manifest: dict[str, Any], config: ml_collections.ConfigDict,
          decoder: Decoder) -> None:
    """Refuses prepared data that do not fit the config, naming what differs."""
    folder = config.data.prepared
    again = f"prepare again: python -m jaxtl.commands.prepare --config CONFIG --out DIR"
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{folder} was prepared in format {manifest.get('format_version')}; "
                        f"this jaxtl reads format {FORMAT_VERSION}: {again}")
    if manifest["dataset"] != config.dataset:
        raise DataError(f"{folder} holds {manifest['dataset']}, but config.dataset is "
                        f"{config.dataset!r}: set data.prepared to a folder prepared from "
                        f"{config.dataset} or {again}")
    if manifest["decoder"] != repr(decoder):
        raise DataError(f"{folder} was decoded as {manifest['decoder']}, but this config "
                        f"decodes as {decoder!r}: {again}")
    if manifest["pixel_settings"] != json.loads(json.dumps(pixel_settings(config))):
        raise DataError(f"{folder} was prepared with {manifest['pixel_settings']}, this config "
                        f"has {pixel_settings(config)}: {again}")
    if manifest["stored_size"] < config.data.resolution:
        raise DataError(f"{folder} stores images at {manifest['stored_size']} px (short side), "
                        f"below config.data.resolution={config.data.resolution}: {again} "
                        f"with --size {config.data.resolution} or more")


def decoder(manifest: dict[str, Any]) -> PreparedDecoder:
    return PreparedDecoder(channels=manifest["channels"], value_scale=manifest["value_scale"],
                           wire_dtype=manifest["pixel_dtype"], kind=manifest["kind"])


def attach(splits: DatasetSplits, manifest: dict[str, Any], folder: str) -> DatasetSplits:
    """The splits with each record's path pointing at its stored pixels ('<shard>#<position>');
    an error naming the records that the prepared data do not hold."""
    base = pathlib.Path(folder).expanduser().resolve()
    per_shard = manifest["records_per_shard"]
    position = {image_id: i for i, image_id in enumerate(manifest["image_ids"])}
    missing = [r.image_id for name in SPLITS for r in splits.split(name)
               if r.image_id not in position]
    if missing:
        raise DataError(f"{len(missing)} images of this run are not in the prepared data "
                        f"{folder} (first: {', '.join(missing[:3])}); it was prepared from "
                        f"{manifest['source']}: prepare again from this config's data")

    def moved(records: Sequence[Record]) -> list[Record]:
        return [dataclasses.replace(
            r, path=f"{base / manifest['shards'][position[r.image_id] // per_shard]}"
                    f"#{position[r.image_id] % per_shard}") for r in records]

    return dataclasses.replace(splits, train=moved(splits.train), val=moved(splits.val),
                               test=moved(splits.test))


@functools.cache
def _cached_manifest(folder: str, mtime: float) -> dict[str, Any]:
    del mtime
    return read_manifest(folder)


def manifest_of(folder: str) -> dict[str, Any]:
    """The manifest of `folder`, read once per process while it is unchanged."""
    path = pathlib.Path(folder).expanduser() / MANIFEST_FILE
    return _cached_manifest(folder, path.stat().st_mtime if path.exists() else 0.0)
