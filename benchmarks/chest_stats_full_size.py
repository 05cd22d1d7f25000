"""Times `jaxtl.commands.stats` on label files of the real sizes (no images needed or opened).

    python benchmarks/chest_stats_full_size.py [--rows 223414] [--cxr14_rows 112120]

Writes a CheXpert train.csv of 223,414 rows (64,540 patients, ~19% lateral, labels drawn with
every cell kind) and a ChestX-ray14 Data_Entry_2017.csv of 112,120 rows (2017 quirks) into a
temporary folder, then runs the stats command on each and prints one JSON line per dataset
with the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

from jaxtl.data.chest.labels import CHEXPERT_LABELS, CXR14_LABELS

CELLS = np.array(["1.0", "0.0", "-1.0", "", "", ""])


def write_chexpert(root: pathlib.Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    header = "Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(CHEXPERT_LABELS)
    patients = np.sort(rng.integers(1, 64541, rows))
    lines = [header]
    labels = CELLS[rng.integers(0, len(CELLS), (rows, len(CHEXPERT_LABELS)))]
    for i, patient in enumerate(patients):
        view = "Lateral" if rng.uniform() < 0.19 else "Frontal"
        lines.append(f"CheXpert-v1.0-small/train/patient{patient:05d}/study1/view{i}_"
                     f"{view.lower()}.jpg,Male,60,{view},{'AP' if view == 'Frontal' else ''},"
                     + ",".join(labels[i]))
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    (root / "valid.csv").write_text(header + "\n")


def write_cxr14(root: pathlib.Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    lines = ["Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
             "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"]
    names = []
    for i in range(rows):
        patient = i // 4 + 1
        findings = [n for n in CXR14_LABELS if rng.uniform() < 0.05] or ["No Finding"]
        names.append(f"{patient:08d}_{i % 4:03d}.png")
        lines.append(f"{names[-1]},{'|'.join(findings)},{i % 4},{patient},058Y,M,PA,"
                     f"2500,2048,0.143,0.143,")
    (root / "Data_Entry_2017.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode())


def time_stats(config: str, root: pathlib.Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command: user + system, which other load on the
    machine does not inflate)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "jaxtl.commands.stats", "--config", config, "--json",
                    f"--config.data.root={root}", "--config.data.task=all"],
                   check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=223_414)
    parser.add_argument("--cxr14_rows", type=int, default=112_120)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = pathlib.Path(folder)
        (root / "chexpert").mkdir()
        (root / "cxr14").mkdir()
        write_chexpert(root / "chexpert", args.rows)
        write_cxr14(root / "cxr14", args.cxr14_rows)
        for dataset, rows in (("chexpert", args.rows), ("cxr14", args.cxr14_rows)):
            wall, cpu = time_stats(f"configs/{dataset}.py", root / dataset)
            print(json.dumps({"dataset": dataset, "rows": rows, "stats_wall_seconds":
                              round(wall, 2), "stats_cpu_seconds": round(cpu, 2),
                              "load_average": round(os.getloadavg()[0], 1)}))


if __name__ == "__main__":
    main()
