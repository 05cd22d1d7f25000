"""Per-core decode throughput, EyePACS-sized JPEGs to 512 px: bare Pillow, jaxtl, prepared shards.

    python benchmarks/decode.py [--images 6] [--rounds 5] [--resolution 512] \
        [--out benchmarks/results/decode_cpu.jsonl]

Writes `--images` JPEGs of 3456 x 2304 px (the largest EyePACS photographs; a fundus-like disc
with camera-like noise, quality 90, about 1.5 MB each) into a temporary folder, prepares them
with `jaxtl.data.prepared` (short side stored at `--resolution`), and then times, in this one
process (one core), image after image:

- bare: Pillow's draft decode (JPEG DCT scaling to at least the target size), RGB conversion and
  one antialiased bilinear resize of the centred square to 512 x 512 (the least any pipeline
  must do with these files);
- jaxtl: the host's part of the EyePACS training transform (`ImageTransform.example` with the
  config's augmentations: random crop, flip, rotation), what a Grain worker does per image: the
  uint8 canvas that holds the crop (draft decode, one antialiased resize) and the warp that the
  train step applies on the device;
- prepared: the same, reading the prepared shards (`PreparedDecoder`; stored at 512 px, the
  canvas is a slice);
- the prepared centred crop of evaluation (no augmentation);
- host_warp: the canvas warped on the host as well (`ImageTransform.pixels`, SciPy bilinear:
  what keeping the crop, flip and rotation on the host would add to the prepared path);
- the stored image (512 x 768 uint8) re-encoded as PNG and as JPEG (quality 95), decoded: what
  a prepared format that re-encodes would pay instead of raw pixels.

The paths take turns within each round (every image through each path), so load from other
processes on a shared machine hits them alike; the figures are medians over rounds of the
per-image time, and the ratios are what to compare. Prints one JSON object (and appends it to
--out): images/s per core on each path, the ratios, and the cores 3,000 images/s would take.
"""

from __future__ import annotations

import argparse
import io
import os
import pathlib
import sys
import tempfile
import time

import numpy as np
from PIL import Image

from jaxtl.data import prepared
from jaxtl.data.decoders import ImageFileDecoder
from jaxtl.data.records import Record
from jaxtl.data.transforms import ImageTransform

sys.path.insert(0, str(pathlib.Path(__file__).parent))  # run as a script or with -m
from results_line import report  # noqa: E402

WIDTH, HEIGHT = 3456, 2304
TARGET_IMAGES_PER_SECOND = 3000


def fundus_photograph(seed: int) -> Image.Image:
    """A bright disc on black with smooth shading and per-pixel sensor noise."""
    rng = np.random.default_rng(seed)
    rows, cols = np.ogrid[:HEIGHT, :WIDTH]
    radius = HEIGHT * 0.48
    distance = np.sqrt((rows - HEIGHT / 2) ** 2 + (cols - WIDTH / 2) ** 2) / radius
    shade = np.clip(1.0 - distance ** 2, 0.0, 1.0)[..., None]
    colour = np.array([190.0, 90.0, 40.0], np.float32)
    pixels = shade * colour + rng.normal(0.0, 12.0, (HEIGHT, WIDTH, 3))
    pixels *= (distance < 1.0)[..., None]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def bare(path: str, resolution: int) -> np.ndarray:
    image = Image.open(path)
    image.draft("RGB", (resolution, resolution))
    image = image.convert("RGB")
    side = min(image.size)
    left, top = (image.width - side) / 2, (image.height - side) / 2
    return np.asarray(image.resize((resolution, resolution), Image.Resampling.BILINEAR,
                                   box=(left, top, left + side, top + side)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    resolution = args.resolution
    with tempfile.TemporaryDirectory() as folder:
        folder = pathlib.Path(folder)
        records = []
        for i in range(args.images):
            path = folder / f"{i}_left.jpeg"
            fundus_photograph(i).save(path, quality=90)
            records.append(Record(f"{i}_left", str(path), 0, str(i)))
        megabytes = np.mean([os.path.getsize(r.path) for r in records]) / 1e6
        decoder = ImageFileDecoder(3)
        plan = prepared.Plan(dataset="eyepacs", source=str(folder), decoder=decoder,
                             pixel_settings={}, stored_size=resolution,
                             records_per_shard=len(records), records=tuple(records),
                             counts={"train": len(records)},
                             digest=prepared.records_digest(records))
        manifest = prepared.write(plan, folder / "prepared", workers=1)
        shard = folder / "prepared" / manifest["shards"][0]
        stored = [f"{shard}#{i}" for i in range(len(records))]
        augment = ("crop", "flip", "rotate")  # configs/eyepacs.py's data.augment
        raw_transform = ImageTransform(resolution, 3, (0.5,) * 3, (0.25,) * 3, augment,
                                       decoder=decoder)
        shard_transform = ImageTransform(resolution, 3, (0.5,) * 3, (0.25,) * 3, augment,
                                         decoder=prepared.decoder(manifest))
        centred = ImageTransform(resolution, 3, (0.5,) * 3, (0.25,) * 3,
                                 decoder=shard_transform.decoder)
        stored_pixels = np.asarray(shard_transform.decoder.decode(stored[0], resolution))
        encoded = {}
        for name, options in (("png", {"format": "PNG"}),
                              ("jpeg95", {"format": "JPEG", "quality": 95})):
            buffer = io.BytesIO()
            Image.fromarray(stored_pixels).save(buffer, **options)
            encoded[name] = buffer.getvalue()
        rng = np.random.default_rng(0)
        paths = {
            "bare": lambda i: bare(records[i].path, resolution),
            "jaxtl": lambda i: raw_transform.example(records[i].path, rng),
            "prepared": lambda i: shard_transform.example(stored[i], rng),
            "prepared_centred": lambda i: centred.example(stored[i], None),
            "prepared_host_warp": lambda i: shard_transform.pixels(stored[i], rng),
            "stored_raw": lambda i: shard_transform.decoder.decode(stored[i], resolution),
            "stored_png": lambda i: np.asarray(Image.open(io.BytesIO(encoded["png"]))),
            "stored_jpeg95": lambda i: np.asarray(Image.open(io.BytesIO(encoded["jpeg95"]))),
        }
        for path in paths.values():  # warm caches (file pages, readers) once
            path(0)
        # what the extra resize of preparing changes: evaluation pixels (centred square, no
        # augmentation), mean absolute difference as a fraction of 255
        plain = [ImageTransform(resolution, 3, (0.5,) * 3, (0.25,) * 3, decoder=d)
                 for d in (decoder, shard_transform.decoder)]
        difference = float(np.mean([
            np.abs(plain[0].wire_pixels(records[i].path, None).astype(np.float64)
                   - plain[1].wire_pixels(stored[i], None)).mean() / 255.0
            for i in range(len(records))]))
        seconds: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(args.rounds):
            for i in range(len(records)):
                for name, path in paths.items():
                    start = time.perf_counter()
                    path(i)
                    seconds[name].append(time.perf_counter() - start)
    rate = {name: 1.0 / float(np.median(times)) for name, times in seconds.items()}
    result = {
        "benchmark": "decode", "image_px": [WIDTH, HEIGHT], "jpeg_mb": round(megabytes, 2),
        "resolution": resolution, "stored_px": list(stored_pixels.shape),
        "images": args.images, "rounds": args.rounds,
        "images_per_second_per_core": {k: round(v, 1) for k, v in rate.items()},
        "jaxtl_over_bare": round(rate["jaxtl"] / rate["bare"], 3),
        "prepared_over_jaxtl": round(rate["prepared"] / rate["jaxtl"], 1),
        "prepared_centred_over_jaxtl": round(rate["prepared_centred"] / rate["jaxtl"], 1),
        "prepared_host_warp_over_jaxtl": round(rate["prepared_host_warp"] / rate["jaxtl"], 1),
        "cores_for_3000_per_second": {k: round(TARGET_IMAGES_PER_SECOND / rate[k], 1)
                                      for k in ("bare", "jaxtl", "prepared", "prepared_centred",
                                                "prepared_host_warp")},
        "prepared_pixel_difference": round(difference, 5),
        "bytes_per_image": {"jpeg": int(megabytes * 1e6),
                            "stored_raw": int(stored_pixels.nbytes),
                            **{f"stored_{k}": len(v) for k, v in encoded.items()}},
        "load_average_1min": os.getloadavg()[0], "cpus": os.cpu_count(),
    }
    report(result, args.out, indent=2)


if __name__ == "__main__":
    main()
