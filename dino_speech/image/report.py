"""Results tables for image SSL runs: trained encoders next to random init and raw pixels."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from dino_speech.errors import DataError

COLUMNS = (
    ("knn@20", "kNN@20 %", ".1f"),
    ("knn@200", "kNN@200 %", ".1f"),
    ("linear", "linear %", ".1f"),
    ("std", "std", ".4f"),
    ("std_ref", "1/sqrt(d)", ".4f"),
    ("eff_rank", "eff. rank", ".1f"),
    ("offdiag_corr", "mean abs off-diag corr", ".3f"),
)


def run_label(run: dict[str, Any]) -> str:
    label = str(run["method"])
    if run.get("predictor"):
        label += f" ({run['predictor']} predictor)"
    if run.get("collapsed"):
        label += " [collapsed]"
    return label


def load_runs(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """``metrics.json`` of runs, given the files or their run folders."""
    runs = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            path = path / "metrics.json"
        if not path.is_file():
            raise DataError(f"no metrics file at {path} (has that run finished?)")
        try:
            run = json.loads(path.read_text())
            run["results"]["ssl"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataError(f"{path} is not an image SSL metrics file: {exc}") from None
        runs.append(run)
    if not runs:
        raise DataError("no runs given")
    return runs


def format_results_table(runs: Sequence[dict[str, Any]]) -> str:
    """One markdown table: each trained run, then the random-init and raw-pixel baselines.

    Baselines are listed once per distinct (dataset, backbone, seed) and dataset respectively.
    """
    head = "| encoder | dataset | " + " | ".join(c[1] for c in COLUMNS) + " | train s |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 3)]

    def row(name: str, dataset: str, metrics: dict[str, Any], seconds: str = "") -> str:
        cells = []
        for key, _, fmt in COLUMNS:
            value = metrics.get(key)
            cells.append("" if value is None else format(value, fmt))
        return f"| {name} | {dataset} | " + " | ".join(cells) + f" | {seconds} |"

    for run in runs:
        secs = f"{run.get('train_seconds', 0):.0f}"
        lines.append(row(run_label(run), run["dataset"], run["results"]["ssl"], secs))
    seen: set[tuple[Any, ...]] = set()
    for run in runs:
        key = ("init", run["dataset"], run.get("backbone"), run.get("seed"))
        if key not in seen:
            seen.add(key)
            name = f"random init ({run.get('backbone')}, seed {run.get('seed')})"
            lines.append(row(name, run["dataset"], run["results"]["random_init"]))
    for run in runs:
        key = ("pixels", run["dataset"])
        if key not in seen:
            seen.add(key)
            lines.append(row("raw pixels", run["dataset"], run["results"]["raw_pixels"]))
    return "\n".join(lines)
