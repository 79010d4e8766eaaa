"""The pseudo-labeling report: per-round results collected from an experiment, as a table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dino_speech.pseudo_label.stages import RoundPaths, read_json

__all__ = ["collect_summary", "format_summary"]


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


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a table: one row per round (round 0 = the initial model)."""
    header = (
        f"{'round':<6}{'EER %':>8}{'minDCF':>9}{'clusters':>10}{'kept %':>8}"
        f"{'NMI':>8}{'purity':>8}{'train acc %':>13}  model"
    )
    lines = [header, "-" * len(header)]
    for row in summary["rounds"]:
        ev = row.get("eval") or {}
        dcf = ev.get("min_dcf") or {}
        first_dcf = next(iter(dcf.values()), None)
        cl = row.get("cluster") or {}
        ft = (row.get("finetune") or {}).get("full") or (row.get("finetune") or {}).get("frozen")
        acc = None if not ft or ft.get("accuracy") is None else 100 * ft["accuracy"]
        name = "init" if row["round"] == 0 else f"round{row['round']}"
        lines.append(
            f"{name:<6}{_fmt(ev.get('eer'), '.2f'):>8}{_fmt(first_dcf, '.4f'):>9}"
            f"{_fmt(cl.get('clusters'), 'd'):>10}"
            f"{_fmt(None if 'coverage' not in cl else 100 * cl['coverage'], '.1f'):>8}"
            f"{_fmt(cl.get('nmi'), '.4f'):>8}{_fmt(cl.get('purity'), '.4f'):>8}"
            f"{_fmt(acc, '.1f'):>13}  {row.get('model') or '-'}"
        )
    if any((r.get("eval") or {}).get("min_dcf") for r in summary["rounds"]):
        p = next(iter((summary["rounds"][0].get("eval") or {}).get("min_dcf", {"?": 0})))
        lines.append(f"minDCF at p_target={p}; NMI/purity of the clusters fine-tuned on")
    return "\n".join(lines)


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    return format(value, spec)
