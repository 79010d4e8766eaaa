"""`dino-speech report`: results tables from the JSON files the commands write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dino_speech.cli.main import cli
from dino_speech.errors import DataError
from dino_speech.report import Row, results_table


def _write(path: Path, blob: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(blob))
    return path


@pytest.fixture
def exp(tmp_path: Path) -> Path:
    """A recipe's experiment: a DINO run, a pseudo-label round, their eval folders."""
    exp = tmp_path / "exp"
    _write(exp / "dino" / "summary.json", {"kind": "dino", "model": "ecapa_tiny", "steps": 714,
                                           "planned_steps": 720, "seconds": 298.4})  # fmt: skip
    ft = exp / "pl" / "round1" / "ft_full"
    quality = {"method": "ahc", "clusters": 43, "nmi": 0.8312, "purity": 0.7, "coverage": 0.84}
    _write(exp / "pl" / "round1" / "cluster" / "quality.json", quality)
    for name, model, eer in (("dino", exp / "dino", 27.315), ("pl1", ft, 25.0)):
        folder = exp / "eval" / name
        _write(folder / "embed.json", {"model": str(model)})
        score = {"eer": eer, "min_dcf": {"0.01": 0.99894, "0.05": 0.9}, "targets": 1900,
                 "nontargets": 1900, "embeddings": str(folder / "xvector.scp")}  # fmt: skip
        _write(folder / "score.json", score)
        _write(folder / "emotion.json", {"micro_f1": 54.25, "scheme": "leave-one-group-out"})
    _write(exp / "eval" / "pl1" / "asnorm.json", {"eer": 24.0, "min_dcf": {"0.01": 0.95}})
    return exp


def test_rows_columns_facts_and_notes(exp: Path) -> None:
    table = results_table(
        [
            Row("DINO teacher ({model}, {steps}/{planned_steps} steps)", exp / "eval" / "dino"),
            Row("round 1 ({steps} steps)", exp / "eval" / "pl1"),
            Row("never run", exp / "eval" / "missing"),
        ],
        ["eer", "min_dcf_0.01", "asnorm_eer", "emotion_f1", "pseudo_labels"],
        notes=["{trials} trials ({targets} target)."],
        machine="cpu",
        times=[("DINO", exp / "dino" / "summary.json"), ("PL", exp / "pl" / "summary.json")],
    )
    lines = table.splitlines()
    assert lines[0] == (
        "| system | EER % | minDCF (p=0.01) | AS-norm EER % | emotion micro-F1 % | pseudo-labels |"
    )
    assert lines[1] == "|---|---|---|---|---|---|"
    assert lines[2] == "| DINO teacher (ecapa_tiny, 714/720 steps) | 27.32 | 0.999 | - | 54.2 | - |"
    assert lines[3] == (
        "| round 1 (? steps) | 25.00 | 0.999 | 24.00 | 54.2 | "
        "43 clusters, NMI 0.831, purity 0.700, kept 84% |"
    )
    assert len(lines) == 7 and lines[4] == ""  # the row without results is left out
    assert lines[5] == "3800 trials (1900 target)."
    assert lines[6].startswith("Machine: ")
    assert lines[6].endswith(", device cpu. Wall time: DINO 298 s, PL -.")


def test_oracle_clusters_read_true_speakers_and_unknown_columns_fail(exp: Path) -> None:
    quality = exp / "pl" / "round1" / "cluster" / "quality.json"
    _write(quality, {"method": "oracle", "clusters": 100, "coverage": 1.0})
    table = results_table([Row("ceiling", exp / "eval" / "pl1")], ["pseudo_labels"])
    assert "| ceiling | true speakers |" in table
    with pytest.raises(DataError, match="unknown column 'eeer'; choose from eer, "):
        results_table([Row("x", exp / "eval" / "dino")], ["eeer"])


def test_cli_prints_and_writes_the_table(exp: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.md"
    args = ["report", "--row", "DINO ({model})", str(exp / "eval" / "dino"),
            "--columns", "eer,micro_f1,folds", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "| DINO (ecapa_tiny) | 27.32 | 54.25 | leave-one-group-out |" in result.output
    assert out.read_text() == result.output
    bad = CliRunner().invoke(cli, ["report", "--row", "x", str(exp), "--columns", "nope"])
    assert bad.exit_code == 2 and bad.output.startswith("Error: unknown column 'nope'")
    none = CliRunner().invoke(cli, ["report"])
    assert none.exit_code == 2 and "give at least one --row LABEL DIR" in none.output
