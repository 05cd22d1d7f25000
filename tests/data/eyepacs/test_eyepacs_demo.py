"""Tests of the synthetic EyePACS demo writer: layout, determinism, imbalance, learnability."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import cohen_kappa_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from jaxtl.data.eyepacs import demo as eyepacs_demo

ROW = re.compile(r"^(\d+)_(left|right),([0-4])$")


def _read_rows(root: pathlib.Path) -> list[tuple[str, int]]:
    lines = (root / "trainLabels.csv").read_text().splitlines()
    assert lines[0] == "image,level"
    return [(line.split(",")[0], int(line.split(",")[1])) for line in lines[1:]]


def _pixels(path: pathlib.Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("eyepacs") / "demo"
    return eyepacs_demo.write_demo_dataset(root, num_patients=300, image_size=96, seed=0)


def test_layout_matches_real_dataset(dataset: pathlib.Path) -> None:
    raw = (dataset / "trainLabels.csv").read_bytes()
    assert raw.startswith(b"image,level\n") and raw.endswith(b"\n") and b"\r" not in raw
    lines = raw.decode("ascii").splitlines()[1:]
    assert len(lines) == 600
    keys = []
    for line in lines:
        match = ROW.match(line)
        assert match, line
        keys.append((int(match.group(1)), match.group(2)))
    assert keys == sorted(keys), "rows must be sorted by patient id, then left before right"
    patients = sorted({patient for patient, _ in keys})
    assert keys == [(p, eye) for p in patients for eye in ("left", "right")]
    assert patients[0] == 10 and len(set(np.diff(patients))) > 1, "ids are not contiguous"

    files = sorted(p.name for p in (dataset / "train").iterdir())
    assert files == sorted(f"{line.split(',')[0]}.jpeg" for line in lines)
    sizes = set()
    for name in files[:40]:
        with Image.open(dataset / "train" / name) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            sizes.add(image.size)
            assert all(0.85 * 96 - 1 <= side <= 1.15 * 96 + 1 for side in image.size)
    assert any(w != h for w, h in sizes), "image sizes and aspect ratios should vary"

    readme = (dataset / "DEMO_README.txt").read_text()
    assert "synthetic" in readme.lower() and "seed: 0" in readme
    leftovers = [p.name for p in dataset.parent.iterdir() if p != dataset]
    assert not leftovers, f"temporary folders left behind: {leftovers}"


def test_same_seed_same_data_and_other_seed_differs(tmp_path: pathlib.Path) -> None:
    def write(name: str, seed: int) -> pathlib.Path:
        return eyepacs_demo.write_demo_dataset(tmp_path / name, num_patients=5, image_size=48, seed=seed)

    first, second, other = write("a", 7), write("b", 7), write("c", 8)
    assert (first / "trainLabels.csv").read_bytes() == (second / "trainLabels.csv").read_bytes()
    for image_id, _ in _read_rows(first):
        name = f"train/{image_id}.jpeg"
        np.testing.assert_array_equal(_pixels(first / name), _pixels(second / name))

    other_rows = _read_rows(other)
    if other_rows == _read_rows(first):
        name = f"train/{other_rows[0][0]}.jpeg"
        assert not np.array_equal(_pixels(first / name), _pixels(other / name))


def test_existing_root_is_refused(tmp_path: pathlib.Path) -> None:
    with pytest.raises(FileExistsError):
        eyepacs_demo.write_demo_dataset(tmp_path, num_patients=1, image_size=48, seed=0)


def test_interrupted_write_leaves_nothing(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save = eyepacs_demo._save_jpeg
    calls = []

    def failing_save(pixels: np.ndarray, path: pathlib.Path) -> None:
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        save(pixels, path)

    monkeypatch.setattr(eyepacs_demo, "_save_jpeg", failing_save)
    with pytest.raises(KeyboardInterrupt):
        eyepacs_demo.write_demo_dataset(tmp_path / "demo", num_patients=4, image_size=48, seed=0)
    assert list(tmp_path.iterdir()) == []


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        eyepacs_demo.write_demo_dataset("/nonexistent/x", num_patients=0, image_size=64, seed=0)
    with pytest.raises(ValueError):
        eyepacs_demo.render_fundus(5, "left", 64, np.random.default_rng(0))


def test_eye_pair_probs_keep_marginals() -> None:
    joint = eyepacs_demo.eye_pair_probs(eyepacs_demo.GRADE_PROBS, 0.7)
    np.testing.assert_allclose(joint, joint.T)
    np.testing.assert_allclose(joint.sum(axis=0), eyepacs_demo.GRADE_PROBS)
    assert np.trace(joint) == pytest.approx(0.7)
    far = np.abs(np.subtract.outer(np.arange(5), np.arange(5))) > 1
    assert (joint[far] == 0).all()


def test_grades_are_imbalanced_and_eyes_correlated(dataset: pathlib.Path) -> None:
    rows = eyepacs_demo.demo_labels(400, np.random.default_rng(3))
    grades = np.array([grade for _, grade in rows])
    counts = np.bincount(grades, minlength=5)
    assert counts.argmax() == 0 and (counts > 0).all()
    assert 0.4 < counts[0] / counts.sum() < 0.6
    left, right = grades[0::2], grades[1::2]
    assert 0.6 < (left == right).mean() < 0.8
    assert (np.abs(left - right) <= 1).all()

    written = np.bincount([grade for _, grade in _read_rows(dataset)], minlength=5)
    assert written.argmax() == 0 and (written > 0).all()


def _lesion_features(path: pathlib.Path) -> list[float]:
    """Hand-made features of a 64x64 copy: area and blob count of dark-red, bright-yellow,
    saturated-red and pale pixels, relative to the smoothed local retina colour."""
    with Image.open(path) as image:
        small = image.convert("RGB").resize((64, 64), Image.Resampling.BILINEAR)
    img = np.asarray(small, np.float32) / 255.0
    retina = ndimage.binary_erosion(img.max(axis=2) > 0.15, iterations=2)
    weight = ndimage.gaussian_filter(retina.astype(np.float32), 4) + 1e-3
    local = ndimage.gaussian_filter(img * retina[..., None], (4, 4, 0)) / weight[..., None] + 1e-3
    rel = img / local
    red, green, blue = img[..., 0], img[..., 1], img[..., 2]
    masks = (
        rel[..., 0] < 0.7,  # haemorrhages, microaneurysms (and vessel crossings)
        rel[..., 0] < 0.55,
        (rel[..., 1] > 1.5) & (green > 1.3 * blue),  # exudates (and the optic disc)
        (green < 0.35 * red) & (rel[..., 0] > 1.05),  # new vessels
        (blue > 0.55 * red) & (rel[..., 2] > 1.5),  # cotton-wool spots
    )
    features = []
    for mask in masks:
        mask = mask & retina
        features += [mask.sum() / retina.sum(), ndimage.label(mask)[1]]
    return features


def test_grade_is_learnable_from_simple_features(dataset: pathlib.Path) -> None:
    rows = _read_rows(dataset)
    x = np.array([_lesion_features(dataset / "train" / f"{image_id}.jpeg") for image_id, _ in rows])
    y = np.array([grade for _, grade in rows])
    patient = np.array([int(image_id.split("_")[0]) for image_id, _ in rows])
    held_out = np.isin(patient, np.unique(patient)[::3])  # a third of the patients, both eyes

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(x[~held_out], y[~held_out])
    kappa = cohen_kappa_score(y[held_out], model.predict(x[held_out]), weights="quadratic")
    print(f"held-out quadratic weighted kappa: {kappa:.3f}")
    assert kappa >= 0.7


@pytest.mark.parametrize("grade", [1, 2, 3, 4])
def test_lesions_are_gathered_and_visible_at_80_px(grade: int) -> None:
    """Lesions of an image lie in one area (a map can point at them, a random map rarely does):
    the box around all of them covers at most 40 % of the photograph, 30 % on average;
    microaneurysms are at least 2.5 px across at the demo run's 80 px."""
    covered = []
    for i in range(8):
        photo = eyepacs_demo.render_fundus(grade, "left", 96, np.random.default_rng(100 * grade + i))
        height, width = photo.pixels.shape[:2]
        boxes = [box for _, box in photo.lesions]
        assert boxes
        left, top = min(b.x for b in boxes), min(b.y for b in boxes)
        right, bottom = max(b.x + b.width for b in boxes), max(b.y + b.height for b in boxes)
        covered.append((right - left) * (bottom - top) / (width * height))
        for finding, box in photo.lesions:
            if finding == "microaneurysm":
                assert min(box.width, box.height) * 80 / min(width, height) >= 2.5
    assert max(covered) <= 0.4 and np.mean(covered) <= 0.3, covered
