"""Results tables (Markdown) from the JSON files the commands write.

A row is a label and an evaluation folder holding what ``score --json-out`` wrote
(``score.json``; ``asnorm.json`` for AS-norm scores) and what ``eval-emotion --json-out``
wrote (``emotion.json``). Columns are named from :data:`COLUMNS`; a row with no value at all
(none of its files there) is left out. Labels and notes may name facts found through those files:

- in a label, the model's: ``{model}``, ``{steps}``, ``{planned_steps}``, ``{total_steps}``,
  ``{epochs_done}`` -- from the ``summary.json`` of the training run (``train dino``,
  ``train untrained``) whose model made the row's embeddings (``score.json`` names the
  embeddings, their ``embed.json`` the model);
- in a note, the first scored row's ``{trials}``, ``{targets}`` and ``{nontargets}``.

A fact that cannot be found reads ``?``; a missing number reads ``-``.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dino_speech.errors import DataError
from dino_speech.provenance import read_record

__all__ = ["COLUMNS", "Row", "machine_info", "results_table"]


@dataclass(frozen=True)
class Column:
    """One column: its header, the row file it reads and how to show the value."""

    header: str
    source: str  # file name in the row's folder; "" for the pseudo-label description
    value: Callable[[dict[str, Any]], Any]
    spec: str = ""

    def cell(self, record: dict[str, Any] | None) -> str:
        if record is None:
            return "-"
        try:
            value = self.value(record)
        except (KeyError, TypeError):
            return "-"
        return "-" if value is None else format(value, self.spec)


def _dcf(p: str) -> Callable[[dict[str, Any]], Any]:
    return lambda r: r["min_dcf"][p]


def _clusters(quality: dict[str, Any]) -> str:
    if quality.get("method") == "oracle":
        return "true speakers"
    text = f"{quality['clusters']} clusters"
    if "nmi" in quality:
        text += f", NMI {quality['nmi']:.3f}, purity {quality['purity']:.3f}"
    return text + f", kept {100 * quality['coverage']:.0f}%"


# what a row's folder may hold
_RESULT_FILES = ("score.json", "asnorm.json", "whitened.json", "emotion.json")

COLUMNS: dict[str, Column] = {
    "eer": Column("EER %", "score.json", lambda r: r["eer"], ".2f"),
    "min_dcf_0.01": Column("minDCF (p=0.01)", "score.json", _dcf("0.01"), ".3f"),
    "min_dcf_0.05": Column("minDCF (p=0.05)", "score.json", _dcf("0.05"), ".3f"),
    "asnorm_eer": Column("AS-norm EER %", "asnorm.json", lambda r: r["eer"], ".2f"),
    "asnorm_min_dcf_0.01": Column("AS-norm minDCF (p=0.01)", "asnorm.json", _dcf("0.01"), ".3f"),
    "whitened_eer": Column("whitened EER %", "whitened.json", lambda r: r["eer"], ".2f"),
    "emotion_f1": Column("emotion micro-F1 %", "emotion.json", lambda r: r["micro_f1"], ".1f"),
    "micro_f1": Column("micro-F1 %", "emotion.json", lambda r: r["micro_f1"], ".2f"),
    "macro_f1": Column("macro-F1 %", "emotion.json", lambda r: r["macro_f1"], ".2f"),
    "uar": Column("UAR %", "emotion.json", lambda r: r["uar"], ".2f"),
    "folds": Column("folds", "emotion.json", lambda r: r["scheme"]),
    "pseudo_labels": Column("pseudo-labels", "", _clusters),
}


@dataclass(frozen=True)
class Row:
    """A table row: ``label`` (may hold ``{model}``-style fields) and its evaluation folder."""

    label: str
    folder: Path


def results_table(
    rows: Sequence[Row],
    columns: Sequence[str],
    *,
    notes: Sequence[str] = (),
    machine: str | None = None,
    times: Sequence[tuple[str, Path]] = (),
) -> str:
    """The Markdown table of ``rows`` x ``columns`` (names in :data:`COLUMNS`), then the
    ``notes`` (one line each), then "Machine: ..., device DEVICE." when ``machine`` names the
    device, with "Wall time: LABEL N s, ..." from ``times``: JSON records with the
    ``seconds`` their command took (``summary.json`` of training and pseudo-labeling, a
    preparation's record)."""
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        raise DataError(f"unknown column {unknown[0]!r}; choose from {', '.join(COLUMNS)}")
    cols = [COLUMNS[c] for c in columns]
    lines = [
        "| system | " + " | ".join(c.header for c in cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    first_score: dict[str, Any] | None = None
    for row in rows:
        files = {name: read_record(row.folder / name) for name in _RESULT_FILES}
        model = _model_of(files)
        cells = [c.cell(files[c.source] if c.source else _quality(model)) for c in cols]
        if all(cell == "-" for cell in cells):
            continue
        first_score = first_score or files.get("score.json")
        facts = _training_facts(model)
        lines.append(f"| {_fill(row.label, facts)} | " + " | ".join(cells) + " |")
    tail = [_fill(note, _trial_facts(first_score)) for note in notes]
    if machine is not None:
        line = f"Machine: {machine_info(machine)}, device {machine}."
        if times:
            line += " Wall time: " + ", ".join(f"{k} {_seconds(p)}" for k, p in times) + "."
        tail.append(line)
    return "\n".join(lines + ([""] + tail if tail else [])) + "\n"


def machine_info(device: str = "cpu") -> str:
    """ "CPU model, N cores, OS[, GPU model]" for results tables."""
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        cpu = platform.processor()
    text = f"{cpu or 'unknown CPU'}, {os.cpu_count()} cores, {platform.system()}"
    if device != "cpu":
        import torch

        if torch.cuda.is_available():
            text += f", {torch.cuda.get_device_name(0)}"
    return text


def _model_of(files: dict[str, dict[str, Any] | None]) -> str | None:
    """The model that made the embeddings a row's results were computed from."""
    for record in files.values():
        if record and record.get("embeddings"):
            embed = read_record(Path(record["embeddings"]).parent / "embed.json")
            if embed is not None:
                return embed.get("model")
    return None


def _training_facts(model: str | None) -> dict[str, Any]:
    if model is None:
        return {}
    folder = Path(model)
    summary = read_record((folder if folder.is_dir() else folder.parent) / "summary.json")
    return summary or {}


def _quality(model: str | None) -> dict[str, Any] | None:
    from dino_speech.pseudo_label.report import round_quality

    return None if model is None else round_quality(model)


def _trial_facts(score: dict[str, Any] | None) -> dict[str, Any]:
    if score is None:
        return {}
    return {
        "trials": score["targets"] + score["nontargets"],
        "targets": score["targets"],
        "nontargets": score["nontargets"],
    }


class _Facts(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def _fill(text: str, facts: dict[str, Any]) -> str:
    return text.format_map(_Facts(facts))


def _seconds(path: Path) -> str:
    seconds = (read_record(path) or {}).get("seconds")
    return "-" if seconds is None else f"{seconds:.0f} s"
