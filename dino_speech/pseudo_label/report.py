"""The pseudo-labeling report: per-round results collected from an experiment, as a table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dino_speech.pseudo_label.stages import RoundPaths, read_json

__all__ = ["collect_summary", "format_summary", "round_quality"]


def collect_summary(exp_dir: Path, init: Path, rounds: int) -> dict[str, Any]:
    """The per-round results found in ``exp_dir`` (EER/minDCF, cluster quality, fine-tuning)."""
    rows = []
    for r in range(rounds + 1):
        paths = RoundPaths.of(exp_dir, r)
        row: dict[str, Any] = {"round": r, "model": str(init) if r == 0 else None}
        metrics = read_json(paths.eval / "metrics.json")
        row["eval"] = metrics
        if metrics is not None:
            row["model"] = metrics.get("model")
        if r > 0:
            row["cluster"] = read_json(paths.cluster / "quality.json")
            row["finetune"] = {
                stage: read_json(out / "result.json")
                for stage, out in (("frozen", paths.ft_frozen), ("full", paths.ft_full))
                if (out / "result.json").is_file()
            }
            model = paths.ft_full / "embedder.pt"
            if not model.is_file():
                model = paths.ft_frozen / "embedder.pt"
            row["model"] = str(model)
        rows.append(row)
    return {"init": str(init), "exp_dir": str(exp_dir), "rounds": rows}


def round_quality(model: str | Path) -> dict[str, Any] | None:
    """The ``quality.json`` of the clusters a round's fine-tuned model (its ``ft_frozen`` or
    ``ft_full`` folder, or the ``embedder.pt`` in one) was trained on; None for other models."""
    folder = Path(model)
    if folder.is_file():
        folder = folder.parent
    paths = RoundPaths(folder.parent)
    if folder not in (paths.ft_frozen, paths.ft_full):
        return None
    return read_json(paths.cluster / "quality.json")


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a table: one row per round (round 0 = the initial model)."""
    rows = summary["rounds"]
    p_targets = next((list(r["eval"]["min_dcf"]) for r in rows if r.get("eval")), [])
    header = f"{'round':<7}{'EER %':>7}" + "".join(f"{'minDCF' + p:>12}" for p in p_targets)
    header += f"{'clusters':>10}{'kept %':>8}{'NMI':>8}{'purity':>8}{'train acc %':>13}  model"
    lines = [header, "-" * len(header)]
    speakers = None
    for row in rows:
        ev = row.get("eval") or {}
        dcf = ev.get("min_dcf") or {}
        cl = row.get("cluster") or {}
        speakers = cl.get("speakers", speakers)
        stages = row.get("finetune") or {}
        ft = stages.get("full") or stages.get("frozen") or {}
        acc = None if ft.get("accuracy") is None else 100 * ft["accuracy"]
        kept = None if "coverage" not in cl else 100 * cl["coverage"]
        name = "init" if row["round"] == 0 else f"round{row['round']}"
        lines.append(
            f"{name:<7}{_fmt(ev.get('eer'), '.2f'):>7}"
            + "".join(f"{_fmt(dcf.get(p), '.4f'):>12}" for p in p_targets)
            + f"{_fmt(cl.get('clusters'), 'd'):>10}{_fmt(kept, '.1f'):>8}"
            f"{_fmt(cl.get('nmi'), '.4f'):>8}{_fmt(cl.get('purity'), '.4f'):>8}"
            f"{_fmt(acc, '.1f'):>13}  {row.get('model') or '-'}"
        )
    if len(rows) > 1:
        truth = f" against the {speakers} true speakers" if speakers else ""
        lines.append(
            f"clusters, kept, NMI, purity: the pseudo-labels each round was fine-tuned on{truth}; "
            "train acc: on them, at the end of its last stage"
        )
    return "\n".join(lines)


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    return format(value, spec)
