"""Demo data of the TFDS datasets: tiny datasets prepared by TFDS itself, in its on-disk format.

`write_demo_dataset(root, name, ...)` prepares `name` ('dataset/config') into the TFDS data_dir
`root` with `download_and_prepare(file_format="array_record")`. The builders derive from TFDS's
catalogue builders, so the features, version, split names and most of the example-generating
code are TFDS's own; what changes is where the data come from (jaxtl's synthetic demo data,
written in the download's layout into a scratch folder, instead of the download) and the steps
for which TFDS would need TensorFlow, OpenCV or Apache Beam:

- diabetic_retinopathy_detection: jaxtl's EyePACS demo (trainLabels.csv, train/) with a third of
  the patients moved to the Kaggle test files (retinopathy_solution.csv, Usage Public or
  Private per patient, test/), read by TFDS's `_generate_examples`; images are processed with
  Pillow instead of OpenCV: `btgraham-300` with jaxtl's Graham preprocessing at the demo's
  image size (not at a 300 px radius), `1M`/`250K` re-encoded at JPEG quality 72 (the demo's
  images are below their pixel targets, so never resized), `original` as written.
- bigearthnet: jaxtl's BigEarthNet demo patches (12 GeoTIFF bands and the labels JSON each),
  gathered as TFDS's archive reader gathers them and processed by TFDS's `_process_example`;
  the rgb image is PNG-encoded with Pillow (TFDS encodes NumPy images with TensorFlow). The
  catalogue builder runs on Beam; the demo builder generates the same features directly.
- chexpert: jaxtl's CheXpert demo (CheXpert-v1.0-small/...) read by TFDS's
  `_generate_examples`.

Preparing needs tensorflow-datasets only (no TensorFlow, no Beam). The tests prepare their TFDS
data with this module.
"""

from __future__ import annotations

import csv
import functools
import importlib
import io
import math
import pathlib
import shutil
from typing import Any

import numpy as np
from PIL import Image

from jaxtl.core.atomic import staged_folder
from jaxtl.data.bigearthnet import demo as bigearthnet_demo
from jaxtl.data.chest import demo as chest_demo
from jaxtl.data.demo_store import README_FILE
from jaxtl.data.eyepacs import demo as eyepacs_demo
from jaxtl.data.eyepacs.graham import GrahamPreprocess
from jaxtl.data.eyepacs.reader import IMAGE_DIR, LABELS_FILE, TEST_IMAGE_DIR, TEST_LABELS_FILE
from jaxtl.data.tfds import source

SCRATCH = "_download"  # the synthetic download, deleted once TFDS has prepared the dataset
TEST_PATIENT_SHARE = 1 / 3  # of the EyePACS demo patients, moved to the Kaggle test files
JPEG_QUALITY = 72  # TFDS's re-encoding quality for the resized configs


def write_demo_dataset(root: str | pathlib.Path, name: str, *, num_patients: int,
                       image_size: int, seed: int) -> pathlib.Path:
    """Prepares the TFDS dataset `name` ('dataset/config') from synthetic data into `root`.

    Raises FileExistsError if `root` exists (the folder appears complete or not at all).
    """
    dataset, _, config = name.partition("/")
    source.tfds_module().disable_progress_bar()  # TFDS's bars would fill the run's log
    with staged_folder(root) as staging:
        scratch = staging / SCRATCH
        if dataset == "diabetic_retinopathy_detection":
            _write_retinopathy_download(scratch, num_patients, image_size, seed)
        elif dataset == "bigearthnet":
            bigearthnet_demo.write_demo_dataset(scratch, num_patches=num_patients, seed=seed)
        elif dataset == "chexpert":
            chest_demo.write_demo_dataset("chexpert", scratch / chest_demo.RELEASE,
                                          num_patients=num_patients, image_size=image_size,
                                          seed=seed)
        else:
            raise ValueError(f"no TFDS demo for {name!r}")
        builder = _builders()[dataset](layout=scratch, image_size=image_size,
                                       config=config or None, data_dir=str(staging),
                                       file_format="array_record")
        builder.download_and_prepare()
        shutil.rmtree(scratch)
        shutil.rmtree(staging / "downloads", ignore_errors=True)
        (staging / README_FILE).write_text(
            f"SYNTHETIC DEMO DATA written by jaxtl (jaxtl.data.tfds.demo): the TFDS dataset "
            f"{name} prepared by TFDS as ArrayRecord from jaxtl's synthetic {dataset} demo "
            f"data (seed {seed}, {num_patients} patients or patches, about {image_size} px). "
            f"Not real data; never judge a model on it.\n")
    return pathlib.Path(root)


def _write_retinopathy_download(folder: pathlib.Path, num_patients: int, image_size: int,
                                seed: int) -> None:
    """The EyePACS demo in the Kaggle layout, with the test files TFDS's builder reads."""
    eyepacs_demo.write_demo_dataset(folder, num_patients=num_patients, image_size=image_size,
                                    seed=seed)
    with (folder / LABELS_FILE).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    patients = sorted({row["image"].split("_")[0] for row in rows}, key=int)
    order = np.random.default_rng(seed).permutation(len(patients))
    held = round(TEST_PATIENT_SHARE * len(patients))
    usage = {patients[i]: ("Public", "Private")[rank % 2]
             for rank, i in enumerate(order[:held].tolist())}
    (folder / TEST_IMAGE_DIR).mkdir()
    train_lines, test_lines = ["image,level"], ["image,level,Usage"]
    for row in rows:
        patient = row["image"].split("_")[0]
        if patient in usage:
            (folder / IMAGE_DIR / f"{row['image']}.jpeg").rename(
                folder / TEST_IMAGE_DIR / f"{row['image']}.jpeg")
            test_lines.append(f"{row['image']},{row['level']},{usage[patient]}")
        else:
            train_lines.append(f"{row['image']},{row['level']}")
    (folder / LABELS_FILE).write_text("\n".join(train_lines) + "\n")
    (folder / TEST_LABELS_FILE).write_text("\n".join(test_lines) + "\n")


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@functools.cache
def _builders() -> dict[str, type]:
    """The demo builders, defined once TFDS is imported (it is an optional dependency)."""
    tfds = source.tfds_module()
    retinopathy = importlib.import_module(
        "tensorflow_datasets.image_classification.diabetic_retinopathy_detection")
    bigearthnet = importlib.import_module(
        "tensorflow_datasets.datasets.bigearthnet.bigearthnet_dataset_builder")
    chexpert = importlib.import_module("tensorflow_datasets.image_classification.chexpert")

    class _FromLayout:
        """Holds the folder of the synthetic download (and the demo's image size)."""

        # No source folder of their own: TFDS would look there for checksums and metadata
        # (and, for a package installed in development mode, needs importlib_resources).
        code_path = None

        def __init__(self, *, layout: pathlib.Path, image_size: int, **kwargs: Any) -> None:
            self._layout = layout
            self._image_size = image_size
            super().__init__(**kwargs)

    with tfds.core.registered.skip_registration():

        class DiabeticRetinopathyDetection(_FromLayout, retinopathy.DiabeticRetinopathyDetection):
            def _split_generators(self, dl_manager: Any) -> dict[str, Any]:
                del dl_manager
                images, tests = self._layout / IMAGE_DIR, self._layout / TEST_IMAGE_DIR
                solution = str(self._layout / TEST_LABELS_FILE)
                return {
                    "train": self._generate_examples(str(images),
                                                     str(self._layout / LABELS_FILE)),
                    "validation": self._generate_examples(str(tests), solution, "Public"),
                    "test": self._generate_examples(str(tests), solution, "Private"),
                }

            def _process_image(self, filepath: str) -> bytes:
                config = self.builder_config
                if config.target_pixels is None:
                    return pathlib.Path(filepath).read_bytes()
                with Image.open(filepath) as opened:
                    image = opened.convert("RGB")
                if config.name.startswith("btgraham"):
                    image = GrahamPreprocess()(image, self._image_size)
                elif image.width * image.height > config.target_pixels:
                    factor = math.sqrt(config.target_pixels / (image.width * image.height))
                    image = image.resize((round(image.width * factor),
                                          round(image.height * factor)))
                return _jpeg(image, JPEG_QUALITY)

        class Bigearthnet(_FromLayout, tfds.core.GeneratorBasedBuilder):
            BUILDER_CONFIGS = bigearthnet.Builder.BUILDER_CONFIGS
            _info = bigearthnet.Builder._info

            def _split_generators(self, dl_manager: Any) -> dict[str, Any]:
                del dl_manager
                return {"train": self._generate_examples()}

            def _generate_examples(self) -> Any:
                selection = self.builder_config.selection
                for folder in sorted(p for p in self._layout.iterdir() if p.is_dir()):
                    example: dict[str, Any] = {"filename": folder.name, "bands": []}
                    for file in sorted(folder.iterdir()):  # as bigearthnet._read_archive
                        if file.name.endswith("_labels_metadata.json"):
                            example["metadata"] = file.read_bytes()
                        elif selection != "rgb" or file.stem[-3:] in {"B02", "B03", "B04"}:
                            example[file.stem[-3:]] = file.read_bytes()
                            example["bands"].append(file.stem[-3:])
                    key, processed = bigearthnet._process_example(example, selection)
                    if selection == "rgb":
                        processed["image"] = _png(processed["image"])
                    yield key, processed

        class Chexpert(_FromLayout, chexpert.Chexpert):
            def _split_generators(self, dl_manager: Any) -> dict[str, Any]:
                del dl_manager
                path = str(self._layout)
                return {
                    "train": self._generate_examples(path, f"{path}/{chexpert._TRAIN_LABELS_FNAME}"),
                    "validation": self._generate_examples(
                        path, f"{path}/{chexpert._VALIDATION_LABELS_FNAME}"),
                }

    return {"diabetic_retinopathy_detection": DiabeticRetinopathyDetection,
            "bigearthnet": Bigearthnet, "chexpert": Chexpert}
