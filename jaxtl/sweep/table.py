"""One row per run of a sweep: results.csv and its machine-readable twin results.jsonl.

A row holds the run's identity (name, role, status, error, pretraining source), its whole
flattened config (`optim.lr`, `data.train_per_class`, ...), provenance (DEMO flag, jaxtl version,
git commit), timing (wall time, images/s), epochs (best, stopping) and its metrics:

- `val.<m>`, `test.<m>`: the best checkpoint's metrics from results.json (what a paper reports);
- `last_val.<m>`: the validation metrics of the last evaluated epoch, from metrics.jsonl;
- `<split>.<m>.ci_low` / `.ci_high` from the `<m>_ci: [low, high]` entries, at any depth;
- nested dicts flatten with dots (`test.recall.grade_2`); lists (a confusion matrix) stay lists
  in results.jsonl and are JSON text in results.csv.
Metrics are taken generically: whatever keys a run's results hold become columns.

summary.md beside them is the table a person reads first (`summary`): each run's headline
metric (its `eval.best_metric`) on test and validation with the intervals, best first, the
runs that failed marked.
"""

from __future__ import annotations

import csv
import io
import json
import pathlib
from collections.abc import Iterable, Mapping
from typing import Any

from jaxtl.config import validation as configuration
from jaxtl.core import atomic
from jaxtl.data import loading
from jaxtl.metrics import bootstrap, headline
from jaxtl.sweep import runner
from jaxtl.workdir import files as rundir

# The sweep folder's own files (beside one folder per run).
SWEEP_FILE = "sweep.json"  # the sweep file, selection, version and runs of the last launch
RESULTS_CSV = "results.csv"
RESULTS_JSONL = "results.jsonl"
SUMMARY_MD = "summary.md"  # each run's headline metric with its interval, best first
IDENTITY = ("run", "role", "status", "error", "pretrain", "optimizer", "needs", "workdir",
            "demo", "dataset", "jaxtl_version", "git_commit", "git_dirty", "best_epoch", "stop_epoch",
            "epochs", "steps", "wall_seconds", "cpu_seconds", "wall_seconds_last_session",
            "train_images_per_second", "attempts")
METRIC_PREFIXES = ("val.", "test.", "last_val.", "split_sizes.", "parameters.")
_LOG_FIELDS = ("step", "split", "demo", "epoch")


def _is_pair(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 2 and all(
        v is None or isinstance(v, (int, float)) for v in value)


def _ci_columns(name: str, value: Any) -> dict[str, Any]:
    if _is_pair(value):
        return {f"{name}.ci_low": value[0], f"{name}.ci_high": value[1]}
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out |= _ci_columns(f"{name}.{key}", sub)
        return out
    return {f"{name}_ci": value}


def metric_columns(prefix: str, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """{'kappa': .8, 'kappa_ci': [.7, .9], 'recall': {'0': .5}} -> prefixed flat columns."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if key.endswith("_ci"):
            out |= _ci_columns(prefix + key[:-3], value)
        elif isinstance(value, Mapping):
            out |= metric_columns(f"{prefix}{key}.", value)
        else:
            out[prefix + key] = value
    return out


def read_log(workdir: pathlib.Path) -> list[dict[str, Any]]:
    path = workdir / rundir.METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_row(workdir: pathlib.Path) -> dict[str, Any]:
    """The row of one run folder (finished or not)."""
    record = runner.read_status(workdir)
    results = rundir.read_results(workdir)
    status = record.get("status", runner.PENDING)
    if results is not None:
        status = runner.DONE
    row: dict[str, Any] = {
        "run": record.get("name", workdir.name), "role": record.get("role"), "status": status,
        "error": None if status == runner.DONE else record.get("error"),
        "pretrain": record.get("pretrain"), "needs": ",".join(record.get("needs", [])),
        "workdir": workdir.name, "wall_seconds": record.get("wall_seconds"),
        "cpu_seconds": record.get("cpu_seconds"),
        "attempts": record.get("attempts"),
    }
    if results is None:
        config = record.get("effective", {})
        row["demo"] = (not config.get(loading.location_key(config["dataset"]))
                       if config else None)
    else:
        config = dict(configuration.flatten(results["config"]))
        for key in ("demo", "dataset", "optimizer", "jaxtl_version", "git_commit", "git_dirty",
                    "best_epoch", "stop_epoch", "epochs", "steps"):
            row[key] = results.get(key)
        row["wall_seconds_last_session"] = results.get("wall_seconds_this_session")
        row["train_images_per_second"] = results.get("train_images_per_second")
        row |= metric_columns("split_sizes.", results.get("split_sizes") or {})
        row |= {f"task.{key}": value for key, value in (results.get("task") or {}).items()}
        # trainable, total, optimizer_state_bytes (LoRA, linear probes, frozen stages)
        row |= {f"parameters.{key}": value
                for key, value in (results.get("parameters") or {}).items()}
        for split in ("val", "test"):
            row |= metric_columns(f"{split}.", results.get(split) or {})
    log = read_log(workdir)
    evaluations = [r for r in log if r.get("split") == "val"]
    if evaluations:
        last = evaluations[-1]
        row["last_val.epoch"] = last.get("epoch")
        row |= metric_columns("last_val.", {k: v for k, v in last.items()
                                             if k not in _LOG_FIELDS})
    if results is not None and row.get("stop_epoch") is None:
        row["stop_epoch"] = row.get("last_val.epoch")  # training always ends with an evaluation
    row |= {key: value for key, value in config.items() if key not in row}
    return row


def collect(sweep_dir: pathlib.Path) -> list[dict[str, Any]]:
    """Rows of every run folder of the sweep (those the sweep has started), sorted by name."""
    statuses = pathlib.Path(sweep_dir).glob(f"*/{rundir.SWEEP_STATUS_FILE}")
    folders = sorted(status.parent for status in statuses)
    return [run_row(folder) for folder in folders]


def columns(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Identity first, then the config, then the metrics, each group in a stable order."""
    seen: dict[str, None] = {}
    for row in rows:
        seen |= dict.fromkeys(row)
    identity = [key for key in IDENTITY if key in seen]
    metrics = sorted((key for key in seen if key.startswith(METRIC_PREFIXES)),
                     key=lambda k: (METRIC_PREFIXES.index(k.split(".")[0] + "."), k))
    config = sorted(key for key in seen if key not in identity and key not in metrics)
    return identity + config + metrics


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return value


def write(sweep_dir: pathlib.Path, rows: list[dict[str, Any]] | None = None) -> list[dict]:
    """Writes results.csv and results.jsonl under the sweep folder; returns the rows."""
    sweep_dir = pathlib.Path(sweep_dir)
    rows = collect(sweep_dir) if rows is None else rows
    header = columns(rows)
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(header)
    for row in rows:
        writer.writerow([_csv_value(row.get(key)) for key in header])
    lines = [json.dumps({key: row.get(key) for key in header}, default=list) for row in rows]
    atomic.write_text(sweep_dir / RESULTS_CSV, text.getvalue())
    atomic.write_text(sweep_dir / RESULTS_JSONL, "".join(line + "\n" for line in lines))
    atomic.write_text(sweep_dir / SUMMARY_MD, summary_markdown(rows))
    return rows


CI_TEXT = f"{100 * bootstrap.CI_LEVEL:g}% CI"
SUMMARY_HEADER = ("", "run", "status", "metric", f"test [{CI_TEXT}]", f"val [{CI_TEXT}]",
                  "error")
NOT_FINISHED_MARK = "FAILED"  # beside a run that failed, or never started because a run it
# starts from failed


def _headline(row: Mapping[str, Any], split: str) -> tuple[float | None, tuple | None]:
    metric = row.get("eval.best_metric")
    value = row.get(f"{split}.{metric}")
    if not headline.is_number(value):
        return None, None
    low, high = row.get(f"{split}.{metric}.ci_low"), row.get(f"{split}.{metric}.ci_high")
    return float(value), ((low, high) if headline.is_number(low) and headline.is_number(high)
                          else None)


def summary(rows: Iterable[Mapping[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """(header, rows): per run its headline metric (`eval.best_metric`) on test and val with
    the intervals; per dataset and metric the runs with a value, best test value (else val)
    first (higher is better, as for the best checkpoint), then the runs without one; failed
    or blocked runs marked FAILED, with their error."""
    def order(row: Mapping[str, Any]) -> tuple:
        test, val = _headline(row, "test")[0], _headline(row, "val")[0]
        best = test if test is not None else val
        return (best is None, str(row.get("dataset") or ""),
                str(row.get("eval.best_metric") or ""), -(best or 0.0), str(row.get("run")))

    body = []
    for row in sorted(rows, key=order):
        failed = row.get("status") in (runner.FAILED, runner.BLOCKED)
        error = str(row.get("error") or "") if failed else ""
        body.append([NOT_FINISHED_MARK if failed else "", row.get("run"), row.get("status"),
                     row.get("eval.best_metric") or "",
                     headline.with_interval(*_headline(row, "test")),
                     headline.with_interval(*_headline(row, "val")),
                     error if len(error) <= 120 else error[:117] + "..."])
    return list(SUMMARY_HEADER), body


def summary_markdown(rows: Iterable[Mapping[str, Any]]) -> str:
    rows = list(rows)
    done = sum(row.get("status") == runner.DONE for row in rows)
    failed = sum(row.get("status") in (runner.FAILED, runner.BLOCKED) for row in rows)
    demo = any(row.get("demo") for row in rows)
    return (f"# Sweep summary\n\n{len(rows)} runs: {done} done, {failed} failed, "
            f"{len(rows) - done - failed} not finished."
            + (" DEMO: synthetic demo data, the numbers say nothing about real images."
               if demo else "")
            + f" Each run's `eval.best_metric` of its best checkpoint with its {CI_TEXT} "
              "(resampling patients, or tiles); every column: results.csv.\n\n"
            + headline.markdown_table(*summary(rows)) + "\n")


def read(sweep_dir: pathlib.Path) -> list[dict[str, Any]]:
    """The rows of results.jsonl."""
    path = pathlib.Path(sweep_dir) / RESULTS_JSONL
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
