"""A model card (``README.md`` with a YAML header) written beside an exported model.

The header follows the Hugging Face model-card keys where they exist::

    ---
    library_name: dino_speech
    task: speaker-verification
    pipeline_tag: feature-extraction
    tags: [speaker-verification, feature-extraction, speaker-embedding, dino]
    license: FILL-IN          # a placeholder: the user states the weights' license
    training_data: data/voxceleb_cuts_vox2_dev.jsonl.gz   # or "unknown"
    embedding_dim: 192
    sample_rate: 16000
    ---

The training data is ``data.train_cuts`` of the experiment's ``config.yaml`` (in the model's
directory or up to two levels above it, as for pseudo-label rounds), else ``unknown``. The
results are the verification results the recipes record for the model at ``EXP/NAME``
(``dino-speech score --json-out EXP/eval/NAME/[LIST/]BASE.json``: the metrics and the trial
list they were computed on), plus any such JSON in the model's own directory; without any
the card says "no results recorded".

A ``README.md`` in the output folder that this module did not write is left alone (the card
goes to ``MODEL_CARD.md`` then). One that it wrote is rewritten, keeping the entries of the
other exported files of the folder (e.g. the TorchScript file beside the ONNX one).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["RecordedResult", "find_results", "training_data", "write_model_card"]

MARKER = "<!-- written by dino-speech export -->"
LICENSE_PLACEHOLDER = "FILL-IN"
_FILE_ENTRY = re.compile(r"^- `(?P<name>[^`]+)`: ")


@dataclass(frozen=True)
class RecordedResult:
    """One recorded scoring run: ``eer`` in percent, ``min_dcf`` {p_target: value}."""

    name: str
    path: Path
    eer: float
    min_dcf: dict[str, float]
    trials: str
    targets: int | None
    nontargets: int | None


def _model_dir(model: str | Path) -> Path | None:
    path = Path(model)
    if path.is_dir():
        return path
    return path.parent if path.is_file() else None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def _result(path: Path, name: str) -> RecordedResult | None:
    blob = _read_json(path)
    if not isinstance(blob, dict) or not isinstance(blob.get("eer"), (int, float)):
        return None
    min_dcf = blob.get("min_dcf") if isinstance(blob.get("min_dcf"), dict) else {}
    trials = blob.get("trials") if isinstance(blob.get("trials"), str) else "unknown"
    return RecordedResult(
        name,
        path,
        float(blob["eer"]),
        {str(k): float(v) for k, v in min_dcf.items() if isinstance(v, (int, float))},
        trials,
        blob.get("targets"),
        blob.get("nontargets"),
    )


def find_results(model: str | Path) -> list[RecordedResult]:
    """Verification results recorded for the model at ``model`` (see the module docstring)."""
    folder = _model_dir(model)
    if folder is None:
        return []
    found: list[RecordedResult] = []
    for path in sorted(folder.glob("*.json")):
        result = _result(path, path.stem)
        if result is not None:
            found.append(result)
    eval_dir = folder.parent / "eval" / folder.name
    if eval_dir.is_dir():
        for path in sorted([*eval_dir.glob("*.json"), *eval_dir.glob("*/*.json")]):
            result = _result(path, path.relative_to(eval_dir).with_suffix("").as_posix())
            if result is not None:
                found.append(result)
    return found


def training_data(model: str | Path) -> str:
    """``data.train_cuts`` of the experiment's ``config.yaml``, else ``"unknown"``."""
    folder = _model_dir(model)
    if folder is None:
        return "unknown"
    for candidate in (folder, folder.parent, folder.parent.parent):
        config = candidate / "config.yaml"
        if not config.is_file():
            continue
        try:
            blob = yaml.safe_load(config.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return "unknown"
        data = blob.get("data") if isinstance(blob, dict) else None
        cuts = data.get("train_cuts") if isinstance(data, dict) else None
        return str(cuts) if cuts else "unknown"
    return "unknown"


def write_model_card(
    out: Path,
    model: str | Path,
    *,
    embed_dim: int,
    sample_rate: int,
    file_entry: str,
    usage: str,
) -> Path:
    """Write the card for the exported file ``out`` (of ``model``) into ``out``'s folder.

    Args:
        out: the exported model file.
        model: what was exported (experiment dir, embedder file, checkpoint or built-in name).
        embed_dim, sample_rate: facts of the model for the header.
        file_entry: one line describing ``out`` (format, inputs and outputs).
        usage: Markdown on how to call ``out`` (under "## Usage").

    Returns:
        The card's path: ``README.md``, or ``MODEL_CARD.md`` beside a README.md of the user's.
    """
    folder = out.parent
    card = folder / "README.md"
    if card.exists() and MARKER not in card.read_text(errors="replace"):
        card = folder / "MODEL_CARD.md"
    entries = {out.name: f"- `{out.name}`: {file_entry}"}
    if card.exists():
        for line in card.read_text(errors="replace").splitlines():
            match = _FILE_ENTRY.match(line)
            if match and match["name"] != out.name and (folder / match["name"]).is_file():
                entries[match["name"]] = line
    header = {
        "library_name": "dino_speech",
        "task": "speaker-verification",
        "pipeline_tag": "feature-extraction",
        "tags": ["speaker-verification", "feature-extraction", "speaker-embedding", "dino"],
        "license": LICENSE_PLACEHOLDER,
        "training_data": training_data(model),
        "embedding_dim": int(embed_dim),
        "sample_rate": int(sample_rate),
    }
    name = Path(str(model)).name or str(model)
    lines = [
        "---",
        yaml.safe_dump(header, sort_keys=False).rstrip(),
        "---",
        MARKER,
        "",
        f"# {name}: speaker embeddings from dino_speech",
        "",
        f"Exported by `dino-speech export` from `{model}`. It maps mono float32 audio in "
        f"[-1, 1] at {sample_rate} Hz to {embed_dim}-dimensional speaker embeddings; two "
        "recordings are compared by the cosine similarity of their embeddings.",
        "",
        "## Files",
        "",
        *sorted(entries.values()),
        "",
        "## Usage",
        "",
        usage,
        "",
        "## Training data",
        "",
        f"`{header['training_data']}` (`data.train_cuts` of the experiment's config)."
        if header["training_data"] != "unknown"
        else "unknown (no experiment config.yaml with `data.train_cuts` found beside the model).",
        "",
        "## Results",
        "",
        *_results_table(find_results(model)),
        "",
        "## License",
        "",
        f"`{LICENSE_PLACEHOLDER}`: state the license of these weights here and in the header "
        "(mind the terms of the training data).",
        "",
    ]
    card.write_text("\n".join(lines))
    return card


def _results_table(results: list[RecordedResult]) -> list[str]:
    if not results:
        return ["No results recorded."]
    p_targets = sorted({p for r in results for p in r.min_dcf}, key=float)
    head = ["scoring", "trials", "EER (%)", *(f"minDCF(p={p})" for p in p_targets), "pairs"]
    rows = [
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in results:
        dcf = [f"{r.min_dcf[p]:.4f}" if p in r.min_dcf else "" for p in p_targets]
        pairs = (
            f"{r.targets} target / {r.nontargets} non-target"
            if r.targets is not None and r.nontargets is not None
            else ""
        )
        rows.append(
            "| " + " | ".join([r.name, f"`{r.trials}`", f"{r.eer:.3f}", *dcf, pairs]) + " |"
        )
    rows += [
        "",
        "EER and minDCF as `dino-speech score` recorded them (cosine scoring; the names are "
        "the recipe's, `asnorm` ones with adaptive S-norm).",
    ]
    return rows
