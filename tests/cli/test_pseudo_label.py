"""``dino-speech pseudo-label run``: help, configs, user errors, a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from dino_speech.cli.main import cli
from dino_speech.config import (
    EncoderConfig,
    FbankConfig,
    PseudoLabelConfig,
    apply_overrides,
    load_config,
    save_config,
)
from dino_speech.models.embedder_file import save_embedder
from dino_speech.models.registry import build_encoder

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted((REPO / "configs").glob("pseudo_label_*.yaml"))


def run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(cli, args)
    return result.exit_code, result.output


@pytest.fixture()
def setup(synthetic_corpus: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A tiny config (evaluation only needs the test cuts) and an untrained init model."""
    features = FbankConfig(num_mel_bins=24, mean_norm="utterance")
    spec = EncoderConfig("resnet_tiny", {"base_channels": 4, "embed_dim": 16})
    torch.manual_seed(0)
    encoder = build_encoder(spec.name, feat_dim=24, **spec.kwargs)
    save_embedder(tmp_path / "init.pt", encoder, spec, features)
    cfg = apply_overrides(
        PseudoLabelConfig(),
        [
            f"data.train_cuts={synthetic_corpus / 'synthetic_cuts_train.jsonl.gz'}",
            f"eval.cuts={synthetic_corpus / 'synthetic_cuts_test.jsonl.gz'}",
            f"eval.trials={synthetic_corpus / 'test' / 'trials'}",
            "embed.num_workers=0",
            "train.device=cpu",
        ],
    )
    save_config(cfg, tmp_path / "cfg.yaml")
    return tmp_path / "cfg.yaml", tmp_path / "init.pt"


def test_help_explains_the_command() -> None:
    code, out = run(["pseudo-label", "run", "--help"])
    assert code == 0
    for word in ("--config", "--init", "--exp-dir", "--rounds", "--device", "--max-minutes"):
        assert word in out
    for word in ("OVERRIDES", "summary.json", "resumes"):
        assert word in out
    code, out = run(["pseudo-label", "--help"])
    assert code == 0 and "run" in out


def test_configs_load() -> None:
    names = {p.name for p in RECIPES}
    assert {
        "pseudo_label_mini.yaml",
        "pseudo_label_lresnet34.yaml",
        "pseudo_label_ecapa_c512.yaml",
    } <= names
    for recipe in RECIPES:
        cfg = load_config(PseudoLabelConfig, recipe)
        assert cfg.data.train_cuts and cfg.eval.cuts and cfg.eval.trials, recipe.name
        assert cfg.margin.margin == 0.2 and cfg.margin.scale == 30.0, recipe.name


def test_round_zero_scores_the_init_model(setup: tuple[Path, Path], tmp_path: Path) -> None:
    config, init = setup
    exp = tmp_path / "exp"
    args = ["pseudo-label", "run", "--config", str(config), "--init", str(init)]
    code, out = run([*args, "--exp-dir", str(exp), "--rounds", "0", "--quiet"])
    assert code == 0, out
    assert "init" in out and "EER" in out
    metrics = json.loads((exp / "round0" / "eval" / "metrics.json").read_text())
    assert f"{metrics['eer']:.2f}" in out
    summary = json.loads((exp / "summary.json").read_text())
    assert len(summary["rounds"]) == 1 and summary["rounds"][0]["eval"] == metrics


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["finetune.full_lrr=0.1"], "unknown config key 'finetune.full_lrr'"),
        (["eval.trials=/no/such/trials"], "eval.trials: file not found"),
        (["cluster.method=spectral"], "'cluster.method' must be one of"),
    ],
)
def test_user_errors_are_one_line(
    setup: tuple[Path, Path], tmp_path: Path, extra: list[str], message: str
) -> None:
    config, init = setup
    args = ["pseudo-label", "run", "--config", str(config), "--init", str(init)]
    code, out = run([*args, "--exp-dir", str(tmp_path / "exp"), *extra])
    assert code == 2, out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], out


def test_missing_init_is_a_usage_error(setup: tuple[Path, Path], tmp_path: Path) -> None:
    config, _ = setup
    code, out = run(
        ["pseudo-label", "run", "--config", str(config), "--init", str(tmp_path / "nope"),
         "--exp-dir", str(tmp_path / "exp")]
    )  # fmt: skip
    assert code == 2 and "--init" in out and "Traceback" not in out


def _clusterable(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """An .npz of 12 speakers x 20 utterances and its utt2spk."""
    import numpy as np

    from dino_speech.embedding_io import save_npz

    rng = np.random.default_rng(0)
    means = rng.standard_normal((12, 16))
    spk = np.repeat(np.arange(12), 20)
    X = (means[spk] + 0.3 * rng.standard_normal((spk.size, 16))).astype(np.float32)
    ids = [f"s{s:02d}-u{i:03d}" for i, s in enumerate(spk)]
    npz = save_npz(tmp_path / "emb.npz", ids, X)
    utt2spk = tmp_path / "utt2spk"
    utt2spk.write_text("".join(f"{u} s{s:02d}\n" for u, s in zip(ids, spk, strict=True)))
    return npz, utt2spk, ids


def test_cluster_writes_labels_and_summary(tmp_path: Path) -> None:
    npz, utt2spk, ids = _clusterable(tmp_path)
    recipe = REPO / "configs" / "pseudo_label_ecapa_c512.yaml"
    out = tmp_path / "clusters"
    code, output = run(
        [
            "pseudo-label",
            "cluster",
            "--embeddings",
            str(npz),
            "--config",
            str(recipe),
            "--out-dir",
            str(out),
            "--utt2spk",
            str(utt2spk),
            "cluster.min_size=4",
        ]
    )
    assert code == 0, output
    summary = json.loads((out / "summary.json").read_text())
    lines = (out / "utt2cluster").read_text().splitlines()
    assert len(lines) == summary["kept"] and {line.split()[0] for line in lines} <= set(ids)
    assert summary["utterances"] == 240 and summary["speakers"] == 12
    assert summary["nmi"] > 0.95 and summary["purity"] > 0.95 and summary["kept_fraction"] > 0.9
    assert summary["config"]["min_size"] == 4  # the override, on top of the config
    assert f"NMI {summary['nmi']:.4f}" in output


def test_cluster_user_errors_are_one_line(tmp_path: Path) -> None:
    npz, utt2spk, _ = _clusterable(tmp_path)
    out = str(tmp_path / "o")
    for args, message in [
        (["--embeddings", str(tmp_path / "nope.npz")], "embeddings file not found"),
        (["--embeddings", str(npz), "--utt2spk", str(utt2spk), "--cuts", str(npz)], "not both"),
        (["--embeddings", str(npz), "cluster.min_sise=4"], "min_sise"),
        (["--embeddings", str(npz), "cluster.aggregate=session"], "--utt2session"),
    ]:
        code, output = run(["pseudo-label", "cluster", *args, "--out-dir", out])
        assert code == 2, output
        assert output.count("Error:") == 1 and "Traceback" not in output and message in output


def test_cluster_by_session_gives_each_session_one_cluster(tmp_path: Path) -> None:
    npz, utt2spk, ids = _clusterable(tmp_path)
    # sessions of 5 utterances inside each speaker
    utt2session = tmp_path / "utt2session"
    utt2session.write_text("".join(f"{u} {u[:3]}-{i // 5}\n" for i, u in enumerate(ids)))
    out = tmp_path / "clusters"
    code, output = run(
        ["pseudo-label", "cluster", "--embeddings", str(npz), "--out-dir", str(out),
         "--utt2spk", str(utt2spk), "--utt2session", str(utt2session),
         "cluster.aggregate=session", "cluster.min_size=4", "cluster.samples_per_cluster=2",
         "cluster.ahc_threshold_mode=neighbours"]
    )  # fmt: skip
    assert code == 0, output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["nmi"] > 0.95 and summary["kept_fraction"] > 0.9
    labels = dict(line.split() for line in (out / "utt2cluster").read_text().splitlines())
    session = dict(line.split() for line in utt2session.read_text().splitlines())
    by_session: dict[str, set[str]] = {}
    for utt, cluster in labels.items():
        by_session.setdefault(session[utt], set()).add(cluster)
    assert all(len(c) == 1 for c in by_session.values())
