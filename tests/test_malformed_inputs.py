"""Every program rejects malformed input with one line naming the file or config key, exit
code 2 and no traceback: label files, folders, .mat, TIFF and JSON files, split lists of all
five datasets' layouts, checkpoints and converter inputs, and malformed configs.

The programs run as the shell runs them (tests/programs.py: a fork per command after one JAX
import), so exit codes and stderr are the real ones.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import scipy.io
from layouts import bigearthnet as ben_layout
from layouts import chest as chest_layout
from layouts import consep as consep_layout
from layouts.bad_files import spoil
from layouts.eyepacs import eyepacs_labels, write_eyepacs
from programs import run_programs

pytestmark = pytest.mark.slow


# --- malformed downloads ----------------------------------------------------------------------
def eyepacs_cases(base: pathlib.Path) -> list[tuple]:
    def root(name: str, labels: str | None = None, encoding: str = "utf-8") -> pathlib.Path:
        folder = write_eyepacs(base / name, eyepacs_labels(3))
        if labels is not None:
            (folder / "trainLabels.csv").write_bytes(labels.encode(encoding))
        return folder

    missing_image = root("missing_image")
    (missing_image / "train" / "10_left.jpeg").unlink()
    no_labels = root("no_labels")
    (no_labels / "trainLabels.csv").unlink()
    rows = "image,level\n10_left,0\n10_right,1\n"
    return [
        ("eyepacs header", "eyepacs", root("header", "img,grade\n10_left,0\n").as_posix(),
         "trainLabels.csv: expected the header 'image,level'"),
        ("eyepacs level", "eyepacs", root("level", rows + "13_left,7\n").as_posix(),
         "trainLabels.csv, line 4: level '7' of 13_left is not a grade 0..4"),
        ("eyepacs truncated row", "eyepacs", root("row", rows + "13_left\n").as_posix(),
         "trainLabels.csv, line 4: expected 2 cells"),
        ("eyepacs utf-16", "eyepacs", root("utf16", rows, "utf-16").as_posix(),
         "trainLabels.csv is not UTF-8 text"),
        ("eyepacs missing root", "eyepacs", (base / "nowhere").as_posix(),
         "nowhere does not exist; set --config.data.root"),
        ("eyepacs missing labels", "eyepacs", no_labels.as_posix(), "trainLabels.csv not found"),
        ("eyepacs missing image", "eyepacs", missing_image.as_posix(),
         "are missing from"),
    ]


def chest_cases(base: pathlib.Path) -> list[tuple]:
    row = chest_layout.chexpert_row

    def chexpert(name: str, train: list[str], valid: list[str] | None = None) -> str:
        return chest_layout.write_chexpert(base / name, train, valid or [], images=False)\
            .as_posix()

    good = [row(p, 1, "Frontal", {"Edema": "1.0"}) for p in range(1, 5)]
    header = chexpert("chexpert_header", good)
    text = (base / "chexpert_header" / "train.csv").read_text()
    (base / "chexpert_header" / "train.csv").write_text(text.replace("Edema", "Oedema", 1))
    utf16 = chexpert("chexpert_utf16", good)
    (base / "chexpert_utf16" / "valid.csv").write_bytes(
        (base / "chexpert_utf16" / "valid.csv").read_text().encode("utf-16"))
    no_valid = chexpert("chexpert_no_valid", good)
    (base / "chexpert_no_valid" / "valid.csv").unlink()

    def cxr14(name: str) -> pathlib.Path:
        return chest_layout.write_cxr14(base / name, images=False)

    finding = cxr14("cxr14_finding")
    entries = finding / "Data_Entry_2017.csv"
    entries.write_bytes(entries.read_bytes().replace(b"Hernia", b"Cancer"))
    column = cxr14("cxr14_column")
    entries = column / "Data_Entry_2017.csv"
    entries.write_bytes(entries.read_bytes().replace(b"Patient ID", b"Patient", 1))
    short = cxr14("cxr14_row")
    with (short / "Data_Entry_2017.csv").open("ab") as handle:
        handle.write(b"00000009_000.png,Edema\r\n")
    listed = cxr14("cxr14_list")
    with (listed / "test_list.txt").open("a") as handle:
        handle.write("99999999_000.png\n")
    gone = cxr14("cxr14_no_entries")
    (gone / "Data_Entry_2017.csv").unlink()
    return [
        ("chexpert header", "chexpert", header, "train.csv: expected the CheXpert header"),
        ("chexpert value", "chexpert",
         chexpert("chexpert_value", good + [row(9, 1, "Frontal", {"Edema": "2.0"})]),
         "train.csv: column 'Edema' holds '2.0'"),
        ("chexpert truncated row", "chexpert",
         chexpert("chexpert_row", good + [good[0].rsplit(",", 5)[0]]),
         "train.csv, line 6: expected 19 cells"),
        ("chexpert path", "chexpert",
         chexpert("chexpert_path", good + [good[0].replace("patient00001", "p1")]),
         "does not name a patientNNNNN/studyN folder"),
        ("chexpert utf-16", "chexpert", utf16, "valid.csv is not UTF-8 text"),
        ("chexpert missing valid.csv", "chexpert", no_valid, "valid.csv not found"),
        ("cxr14 finding", "cxr14", finding.as_posix(), "unknown finding 'Cancer'"),
        ("cxr14 column", "cxr14", column.as_posix(), "the header lacks Patient ID"),
        ("cxr14 truncated row", "cxr14", short.as_posix(), "line 10: expected at least"),
        ("cxr14 split list", "cxr14", listed.as_posix(),
         "test_list.txt names 1 images that the label file does not have",
         ["--config.chest.split=official"]),
        ("cxr14 missing label file", "cxr14", gone.as_posix(),
         "holds neither Data_Entry_2017_v2020.csv nor Data_Entry_2017.csv"),
    ]


def consep_cases(base: pathlib.Path) -> list[tuple]:
    def root(name: str) -> pathlib.Path:
        folder = base / name
        for split, prefix in (("Train", "train"), ("Test", "test")):
            image = np.random.default_rng(1).integers(0, 256, (24, 30, 3), dtype=np.uint8)
            consep_layout.write_tile(folder, split, f"{prefix}_1", image, [(5.0, 6.0)], [2])
        return folder

    garbage = root("mat_garbage")
    (garbage / "Train" / "Labels" / "train_1.mat").write_bytes(b"not a mat file at all")
    keyless = root("mat_key")
    scipy.io.savemat(keyless / "Test" / "Labels" / "test_1.mat", {"inst_map": np.zeros((2, 2))})
    folderless = root("no_images")
    for path in (folderless / "Test" / "Images").iterdir():
        path.unlink()
    (folderless / "Test" / "Images").rmdir()
    tile = root("tile")
    spoil(tile / "Train" / "Images" / "train_1.png", "truncated")
    return [
        ("consep .mat", "consep", garbage.as_posix(), "train_1.mat cannot be read as a .mat"),
        ("consep .mat key", "consep", keyless.as_posix(), "test_1.mat has no 'inst_type'"),
        ("consep folder", "consep", folderless.as_posix(), "Test must hold Images/"),
        ("consep tile", "consep", tile.as_posix(),
         "train_1.png cannot be read as an image"),
    ]


def bigearthnet_cases(base: pathlib.Path) -> list[tuple]:
    names = {"train": ["S2A_MSIL2A_20170617T113321_1_1"],
             "val": ["S2A_MSIL2A_20170617T113321_1_2"],
             "test": ["S2A_MSIL2A_20170617T113321_1_3"]}

    def root(name: str) -> pathlib.Path:
        folder = base / name
        for split, patches in names.items():
            for patch in patches:
                ben_layout.write_patch(folder, patch, ["Mixed forest"])
            (folder / f"{split}.csv").write_text("".join(f"{p}\n" for p in patches))
        return folder

    broken_json = root("json")
    patch = names["val"][0]
    (broken_json / patch / f"{patch}_labels_metadata.json").write_text('{"labels": ["Mixed')
    unknown = root("label")
    (unknown / patch / f"{patch}_labels_metadata.json").write_text('{"labels": ["Lava"]}')
    listed = root("list")
    with (listed / "test.csv").open("a") as handle:
        handle.write("S2B_MSIL2A_20180204T094161_9_9\n")
    no_lists = root("no_lists")
    (no_lists / "val.csv").unlink()
    tiff = root("tiff")
    band = tiff / names["train"][0] / f"{names['train'][0]}_B04.tif"
    band.write_bytes(b"II*\x00 not really a TIFF")
    return [
        ("bigearthnet JSON", "bigearthnet", broken_json.as_posix(),
         f"{patch}_labels_metadata.json cannot be read as JSON"),
        ("bigearthnet label", "bigearthnet", unknown.as_posix(), "'Lava'"),
        ("bigearthnet split list", "bigearthnet", listed.as_posix(),
         "1 of 4 listed patches have no folder"),
        ("bigearthnet lists", "bigearthnet", no_lists.as_posix(), "val.csv not found"),
        ("bigearthnet TIFF", "bigearthnet:all", tiff.as_posix(),
         "_B04.tif cannot be read as a GeoTIFF"),
    ]


def dataset_commands(base: pathlib.Path) -> list[tuple[str, tuple, str]]:
    cases = (eyepacs_cases(base / "eyepacs") + chest_cases(base / "chest")
             + consep_cases(base / "consep") + bigearthnet_cases(base / "bigearthnet"))
    commands = []
    for name, config, root, expected, *extra in cases:
        file, _, arg = config.partition(":")
        args = ["--config", f"configs/{file}.py" + (f":{arg}" if arg else ""),
                f"--config.data.root={root}", f"--config.data.cache_dir={base / 'cache'}",
                *(extra[0] if extra else [])]
        # the band images are decoded by channel_stats; the label files by stats
        module = "jaxtl.commands.channel_stats" if name == "bigearthnet TIFF" else "jaxtl.commands.stats"
        commands.append((name, (module, args), expected))
    return commands


# --- malformed configs ------------------------------------------------------------------------
CONFIG_CASES = [  # (config file, overrides, what the one line must say)
    ("eyepacs", ["--config.nope=1"], "config.nope is not a known setting"),
    ("eyepacs", ["--config.data.nope=1"], "config.data.nope is not a known setting"),
    ("eyepacs", ["--config.data.sub.key=1"], "config.data.sub.key is not a known setting"),
    ("eyepacs", ["--config.train.epochs=abc"], "--config.train.epochs=abc: invalid literal"),
    ("eyepacs", ["--config.train.epochs=0"], "config.train.epochs is 0"),
    ("eyepacs", ["--config.optim.name=sgdd"], "config.optim.name is 'sgdd'; allowed values"),
    ("eyepacs", ["--config.optim.lr=-1"], "config.optim.lr is -1.0"),
    ("eyepacs", ["--config.model.arch=resnet51"], "config.model.arch is 'resnet51'"),
    ("eyepacs", ["--config.model.head=mlp"], "config.model.head is 'mlp'"),
    ("eyepacs", ["--config.model.dtype=float16"], "config.model.dtype is 'float16'"),
    ("eyepacs", ["--config.model.dropout=1.5"], "config.model.dropout is 1.5"),
    ("eyepacs", ["--config.data.augment=crop,blur"], "config.data.augment is 'crop,blur'"),
    ("eyepacs", ["--config.data.channels=2"], "config.data.channels is 2; EyePACS"),
    ("eyepacs", ["--config.data.mean=(0.5,)"], ("config.data.mean and config.data.std must "
                                                 "have one value per channel")),
    ("eyepacs", ["--config.data.val_fraction=0.6", "--config.data.test_fraction=0.5"],
     "config.data.val_fraction + config.data.test_fraction must be below 1"),
    ("eyepacs", ["--config.data.batch_size=0"], "config.data.batch_size is 0"),
    ("eyepacs", ["--config.data.num_workers=-2"], "config.data.num_workers is -2"),
    ("eyepacs", ["--config.data.resolution=8"], "config.data.resolution is 8"),
    ("eyepacs", ["--config.data.bad_images=ignore"], "config.data.bad_images is 'ignore'"),
    ("eyepacs", ["--config.eval.best_metric=auroc"], "config.eval.best_metric is 'auroc'"),
    ("eyepacs", ["--config.demo.arch=inception_v3", "--config.demo.resolution=64"],
     "config.demo.resolution is 64; inception_v3 (config.demo.arch) needs at least 75 px"),
    ("eyepacs", ["--config.finetune.strategy=freeze_stages"],
     "config.finetune.freeze_stages is 0; expected 1 .. 5"),
    ("eyepacs", ["--config.finetune.unfreeze_epochs=(1,)"],
     "config.finetune.unfreeze_epochs is (1,) but finetune.strategy is 'full'"),
    ("eyepacs", ["--config.finetune.stage_lr_multipliers=(1.0,2.0)"],
     "config.finetune.stage_lr_multipliers has 2 values"),
    ("eyepacs", ["--config.optim.decay_epochs=(20,10)"], "config.optim.decay_epochs is (20, 10)"),
    ("eyepacs", ["--config.optim.gradual_decay=exponential"],
     "config.optim.end_lr_fraction must be above 0"),
    ("eyepacs", ["--config.train.checkpoint_every_steps=-1"],
     "config.train.checkpoint_every_steps is -1"),
    ("eyepacs", ["--config.eyepacs.preprocess=ben"], "config.eyepacs.preprocess is 'ben'"),
    ("eyepacs", ["--config.dataset=nope"], "config.dataset is 'nope'"),
    ("nothere", [], "--config configs/nothere.py: the config file does not load"),
    ("chexpert", ["--config.chest.uncertain=maybe"], "config.chest.uncertain is 'maybe'"),
    ("chexpert", ["--config.chest.uncertain_per_label=Edema=sometimes"], "Edema=sometimes"),
    ("chexpert", ["--config.data.task=Hernia"], "'Hernia' is not a chexpert label"),
    ("consep", ["--config.consep.patch_size=2"], "config.consep.patch_size is 2"),
    ("bigearthnet", ["--config.bigearthnet.bands=B99"], "config.bigearthnet.bands is 'B99'"),
    ("bigearthnet", ["--config.bigearthnet.interpolation=cubic"],
     "config.bigearthnet.interpolation is 'cubic'"),
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every case, run once: (name, command, expected text) -> the run."""
    base = tmp_path_factory.mktemp("malformed")
    cases = dataset_commands(base / "data")
    for config, overrides, expected in CONFIG_CASES:
        cases.append((f"config {' '.join(overrides) or config}",
                      ("jaxtl.commands.stats", ["--config", f"configs/{config}.py", *overrides,
                                       f"--config.data.cache_dir={base / 'cache'}"]), expected))
    # values set on the command line that a demo run would replace are refused, not swallowed
    cases.append(("demo replaces model.arch", ("jaxtl.main", [
        "--config", "configs/eyepacs.py", "--workdir", str(base / "run"),
        "--config.model.arch=resnet34"]),
        "config.model.arch='resnet34' is set, but this run has no data.root"))
    # checkpoints that do not fit, converter inputs that are not weights
    eyepacs = write_eyepacs(base / "tiny_eyepacs", eyepacs_labels(6))
    (base / "weights.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00garbage!")
    (base / "bit.npz").write_text("not a zip file")
    cases += [
        ("init that does not exist", ("jaxtl.main", [
            "--config", "configs/eyepacs.py", "--workdir", str(base / "run2"),
            f"--config.data.root={eyepacs}", "--config.model.arch=small_cnn",
            "--config.data.resolution=32", "--config.data.batch_size=4",
            f"--config.model.init={base / 'no_such_run'}"]),
         "no_such_run is neither a converted pretrained checkpoint"),
        ("evaluate a folder that is no run", ("jaxtl.commands.evaluate", [
            "--config", "configs/eyepacs.py", "--checkpoint", str(base / "tiny_eyepacs"),
            "--workdir", str(base / "eval")]), "is not inside a finished jaxtl run"),
        ("timm converter input", ("jaxtl.convert_weights.timm", [
            "--arch", "resnet18", "--weights", str(base / "weights.safetensors"),
            "--out", str(base / "converted")]), "weights.safetensors"),
        ("bit converter input", ("jaxtl.convert_weights.bit", [
            "--weights", str(base / "bit.npz"), "--out", str(base / "converted")]), "bit.npz"),
        ("explain a folder that is no run", ("jaxtl.explain", [f"--workdir={eyepacs}"]),
         f"error: {eyepacs} is not a jaxtl run folder"),
    ]
    # sweep files: one that is not there, one that sets a key no config has
    bad_sweep = base / "bad_sweep.py"
    bad_sweep.write_text('from jaxtl.sweep import Sweep, axis, product\n\n\n'
                         'def get_sweep(arg=None):\n    return Sweep(config="configs/eyepacs.py", '
                         'fixed={"optim.lrr": 0.1}, grid=product(axis("train.seed", [0])))\n')
    cases += [
        ("sweep file missing", ("jaxtl.sweep", [
            "--config", str(base / "no_sweep.py"), "--workdir", str(base / "sweep")]),
         "no_sweep.py does not exist"),
        ("sweep key unknown", ("jaxtl.sweep", [
            "--config", str(bad_sweep), "--workdir", str(base / "sweep"), "--dry-run"]),
         "config.optim.lrr is not a known setting"),
    ]
    results = run_programs([command for _, command, _ in cases])
    return [(name, expected, run) for (name, _, expected), run in zip(cases, results)]


def test_at_least_twenty_malformed_downloads_and_thirty_malformed_configs_are_tried(runs):
    names = [name for name, _, _ in runs]
    assert sum(not name.startswith("config") for name in names) >= 20
    assert sum(name.startswith("config") for name in names) >= 30
    assert {name.split()[0] for name in names} >= {"eyepacs", "chexpert", "cxr14", "consep",
                                                  "bigearthnet"}


def test_each_is_one_line_naming_the_file_or_key_exit_2_no_traceback(runs):
    wrong = []
    for name, expected, run in runs:
        errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
        if (run.returncode != 2 or run.traceback or len(errors) != 1
                or expected not in errors[0]):
            wrong.append(f"{name}: exit {run.returncode}, expected {expected!r}, stderr "
                         f"{run.stderr[-600:]!r}")
    assert not wrong, "\n".join(wrong)
