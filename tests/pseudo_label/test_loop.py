"""The pseudo-labeling loop: one round end to end, idempotency, config changes, kill + resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dino_speech.config import PseudoLabelConfig, apply_overrides
from dino_speech.data.manifests import load_cuts, read_kaldi_list
from dino_speech.errors import ConfigError, DataError
from dino_speech.loading import load_embedder
from dino_speech.pseudo_label.finetune import MarginFinetuner
from dino_speech.pseudo_label.loop import (
    STAGE_LOG,
    format_summary,
    pseudo_labelled_cuts,
    round_config,
    run_pseudo_label,
)

STAGES = ("train_emb", "cluster", "cuts_pseudo.jsonl.gz", "ft_frozen", "ft_full", "eval")


@pytest.fixture(scope="module")
def one_round(
    tiny_pl_config: PseudoLabelConfig,
    init_model: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict]:
    """A finished one-round run (shared by the tests below; copy it before changing it)."""
    cfg = tiny_pl_config
    exp = tmp_path_factory.mktemp("pl_loop") / "exp"
    summary = run_pseudo_label(cfg, init_model, exp, rounds=1, progress=False)
    return exp, summary


def stage_runs(exp: Path) -> list[str]:
    """The '<stage>: running' lines of the last invocation in the stage log."""
    text = (exp / STAGE_LOG).read_text().splitlines()
    last = max(i for i, line in enumerate(text) if "round 0 eval:" in line)
    return [line.split(" ", 2)[2].rsplit(":", 1)[0] for line in text[last:] if "running" in line]


def encoder_state(path: Path) -> dict[str, torch.Tensor]:
    return load_embedder(path)[0].state_dict()


def test_one_round_writes_every_stage(one_round: tuple[Path, dict], init_model: Path) -> None:
    exp, summary = one_round
    for name in STAGES:
        assert (exp / "round1" / name).exists(), name
        assert (exp / "round1" / f".{name}.done").is_file(), name
    rounds = summary["rounds"]
    assert [r["round"] for r in rounds] == [0, 1]
    assert rounds[0]["model"] == str(init_model) and rounds[0]["eval"]["eer"] >= 0
    assert 0 <= rounds[1]["eval"]["eer"] <= 100
    quality = rounds[1]["cluster"]
    assert quality["clusters"] >= 2 and 0 <= quality["nmi"] <= 1 and quality["speakers"] == 6
    assert set(rounds[1]["finetune"]) == {"frozen", "full"}
    assert json.loads((exp / "summary.json").read_text()) == summary
    # The final model is the last stage's encoder, as an embedder package in EXP.
    final = encoder_state(exp / "embedder.pt")
    for key, value in encoder_state(exp / "round1" / "ft_full" / "embedder.pt").items():
        assert torch.equal(final[key], value)
    # The pseudo-labelled cuts are the clustered ones, labelled with their cluster.
    labels = {u: int(v) for u, v in read_kaldi_list(exp / "round1" / "cluster" / "labels").items()}
    cuts = load_cuts(exp / "round1" / "cuts_pseudo.jsonl.gz")
    assert {c.id: c.custom["pseudo_speaker"] for c in cuts} == {
        u: v for u, v in labels.items() if v >= 0
    }
    table = format_summary(summary)
    assert "init" in table and "round1" in table and f"{quality['nmi']:.4f}" in table


def test_rerun_does_nothing(one_round: tuple[Path, dict], init_model: Path) -> None:
    exp, summary = one_round
    cfg_path = exp / "config.yaml"
    from dino_speech.config import load_config

    cfg = load_config(PseudoLabelConfig, cfg_path)
    files = [p for p in exp.rglob("*") if p.is_file()]
    mtimes = {p: p.stat().st_mtime_ns for p in files}
    # the same request as the finished run's summary.json: no file is touched, not even the log
    again = run_pseudo_label(cfg, init_model, exp, rounds=1, progress=False)
    assert again == summary
    assert {p: p.stat().st_mtime_ns for p in files} == mtimes
    # without that record the stages' own markers still skip every stage
    (exp / "summary.json").unlink()
    files = [p for p in (exp / "round1").rglob("*") if p.is_file()]
    mtimes = {p: p.stat().st_mtime_ns for p in files}
    again = run_pseudo_label(cfg, init_model, exp, rounds=1, progress=False)
    assert stage_runs(exp) == []
    assert {k: v for k, v in again.items() if k != "seconds"} == {
        k: v for k, v in summary.items() if k != "seconds"
    }
    assert {p: p.stat().st_mtime_ns for p in files} == mtimes


def test_a_changed_setting_redoes_only_what_it_affects(
    one_round: tuple[Path, dict], init_model: Path, tmp_path: Path
) -> None:
    exp = tmp_path / "exp"
    shutil.copytree(one_round[0], exp)
    from dino_speech.config import load_config

    cfg = apply_overrides(
        load_config(PseudoLabelConfig, exp / "config.yaml"), ["finetune.full_lr=0.5"]
    )
    before = encoder_state(exp / "round1" / "ft_full" / "embedder.pt")
    run_pseudo_label(cfg, init_model, exp, rounds=1, progress=False)
    assert stage_runs(exp) == ["round 1 ft_full", "round 1 eval"]
    after = encoder_state(exp / "round1" / "ft_full" / "embedder.pt")
    assert any(not torch.equal(before[k], after[k]) for k in before)
    # Settings that do not change the result are not part of a stage's identity.
    cfg = apply_overrides(cfg, ["train.log_every=1", "data.num_workers=1", "embed.batch_size=3"])
    run_pseudo_label(cfg, init_model, exp, rounds=1, progress=False)
    assert stage_runs(exp) == []


def test_a_killed_run_resumes_mid_fine_tuning(
    one_round: tuple[Path, dict],
    tiny_pl_config: PseudoLabelConfig,
    init_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = tiny_pl_config
    exp = tmp_path / "exp"
    original = MarginFinetuner._train_step

    def dies_in_the_full_stage(self: MarginFinetuner, batch: dict) -> None:
        if self.stage == "full" and self.step == 2:  # after the checkpoint at step 2
            raise KeyboardInterrupt
        original(self, batch)

    monkeypatch.setattr(MarginFinetuner, "_train_step", dies_in_the_full_stage)
    with pytest.raises(KeyboardInterrupt):
        run_pseudo_label(cfg, init_model, exp, rounds=1, progress=False)
    assert not (exp / "round1" / ".ft_full.done").exists()
    assert (exp / "round1" / ".ft_full.started").exists()
    monkeypatch.setattr(MarginFinetuner, "_train_step", original)
    summary = run_pseudo_label(cfg, init_model, exp, rounds=1, progress=False)
    assert stage_runs(exp) == ["round 1 ft_full", "round 1 eval"]
    assert "resumed from" in (exp / "round1" / "ft_full" / "train.log").read_text()
    # ... and ends where the uninterrupted run ended.
    straight_exp, straight = one_round
    ours = encoder_state(exp / "round1" / "ft_full" / "embedder.pt")
    theirs = encoder_state(straight_exp / "round1" / "ft_full" / "embedder.pt")
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key
    assert summary["rounds"][1]["eval"]["eer"] == straight["rounds"][1]["eval"]["eer"]


def test_too_few_clusters_names_the_knobs(
    tiny_pl_config: PseudoLabelConfig, init_model: Path, tmp_path: Path
) -> None:
    cfg = apply_overrides(tiny_pl_config, ["eval.cuts=", "eval.trials=", "cluster.num_clusters=1"])
    with pytest.raises(ConfigError, match="kept 1 cluster") as err:
        run_pseudo_label(cfg, init_model, tmp_path / "exp", rounds=1, progress=False)
    for knob in ("cluster.ahc_threshold", "cluster.min_size", "cluster.max_size"):
        assert knob in str(err.value)
    assert not (tmp_path / "exp" / "round1" / ".cluster.done").exists()


def test_config_errors(tiny_pl_config: PseudoLabelConfig, init_model: Path, tmp_path: Path) -> None:
    cfg = apply_overrides(tiny_pl_config, ["eval.trials="])
    with pytest.raises(ConfigError, match="both eval.cuts and eval.trials"):
        run_pseudo_label(cfg, init_model, tmp_path, rounds=1)
    cfg = apply_overrides(tiny_pl_config, [f"data.train_cuts={tmp_path / 'missing.jsonl.gz'}"])
    with pytest.raises(DataError, match="data.train_cuts: file not found"):
        run_pseudo_label(cfg, init_model, tmp_path, rounds=1)
    with pytest.raises(ConfigError, match="rounds must be >= 0"):
        run_pseudo_label(tiny_pl_config, init_model, tmp_path, rounds=-1)
    with pytest.raises(DataError, match="model not found"):
        run_pseudo_label(tiny_pl_config, tmp_path / "nope", tmp_path, rounds=1)
    assert not list(tmp_path.iterdir())  # nothing written before the inputs were checked


def test_pseudo_labelled_cuts_drop_the_left_out(synthetic_corpus: Path) -> None:
    cuts = load_cuts(synthetic_corpus / "synthetic_cuts_train.jsonl.gz")
    ids = [c.id for c in cuts]
    labels = {u: (i % 3) - 1 for i, u in enumerate(ids[:-1])}  # -1, 0, 1, ...; last: none
    kept = pseudo_labelled_cuts(cuts, labels, "pseudo_speaker")
    expected = {u: v for u, v in labels.items() if v >= 0}
    assert {c.id: c.custom["pseudo_speaker"] for c in kept} == expected
    assert all(c.custom.get("speaker") is not None for c in kept)  # other labels stay
    assert np.isin(list(expected.values()), [0, 1]).all()


def test_round_overrides(
    tiny_pl_config: PseudoLabelConfig, init_model: Path, tmp_path: Path
) -> None:
    cfg = apply_overrides(tiny_pl_config, ["round_overrides={2: [cluster.ahc_threshold=0.6]}"])
    assert round_config(cfg, 2).cluster.ahc_threshold == 0.6
    assert round_config(cfg, 1) == cfg and cfg.cluster.ahc_threshold == 0.8
    for bad, message in (
        (
            "{2: [cluster.ahc_treshold=0.6]}",
            r"round_overrides\[2\]: .*did you mean 'ahc_threshold'",
        ),
        ("{0: [cluster.min_size=3]}", "round numbers >= 1"),
        ("{1: cluster.min_size=3}", "list of 'key=value' strings"),
    ):
        wrong = apply_overrides(tiny_pl_config, [f"round_overrides={bad}"])
        with pytest.raises(ConfigError, match=message):
            run_pseudo_label(wrong, init_model, tmp_path, rounds=1)


def _ddp_worker(rank: int, port: int, cfg: PseudoLabelConfig, init: Path, exp: Path) -> None:
    import os

    os.environ.update(
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "WORLD_SIZE": "2",
            "LOCAL_RANK": str(rank),
        }
    )
    torch.set_num_threads(1)
    run_pseudo_label(cfg, init, exp, rounds=1, progress=False)


def test_two_gloo_processes_run_a_round(
    tiny_pl_config: PseudoLabelConfig, init_model: Path, tmp_path: Path
) -> None:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    cfg = apply_overrides(tiny_pl_config, ["data.batch_size=2"])
    exp = tmp_path / "exp"
    mp.spawn(_ddp_worker, args=(port, cfg, init_model, exp), nprocs=2, join=True)
    summary = json.loads((exp / "summary.json").read_text())
    assert summary["rounds"][1]["eval"]["eer"] >= 0
    for name in STAGES:
        assert (exp / "round1" / f".{name}.done").is_file(), name
    # Every training utterance was embedded once, by one of the two processes.
    train = load_cuts(tiny_pl_config.data.train_cuts)
    embedded = read_kaldi_list(exp / "round1" / "train_emb" / "xvector.scp")
    assert sorted(embedded) == sorted(c.id for c in train)
    blob = torch.load(
        next((exp / "round1" / "ft_full" / "checkpoints").glob("epoch-*.pt")), weights_only=True
    )
    assert blob["world_size"] == 2 and len(blob["ranks"]) == 2


def test_oracle_clusters_are_the_true_speakers(
    tiny_pl_config: PseudoLabelConfig, init_model: Path, tmp_path: Path
) -> None:
    cfg = apply_overrides(
        tiny_pl_config,
        ["eval.cuts=", "eval.trials=", "cluster.method=oracle", "cluster.min_size=1"],
    )
    run_pseudo_label(cfg, init_model, tmp_path / "exp", rounds=1, progress=False)
    labels = read_kaldi_list(tmp_path / "exp" / "round1" / "cluster" / "labels")
    truth = {c.id: c.custom["speaker"] for c in load_cuts(cfg.data.train_cuts)}
    assert set(labels) == set(truth)
    # one cluster per speaker and one speaker per cluster
    pairs = {(labels[u], truth[u]) for u in labels}
    assert len(pairs) == len(set(truth.values())) == len({c for c, _ in pairs})
    quality = json.loads((tmp_path / "exp" / "round1" / "cluster" / "quality.json").read_text())
    assert quality["nmi"] == pytest.approx(1.0) and quality["purity"] == pytest.approx(1.0)


def test_sessions_of_the_cuts_are_clustered_whole(
    tiny_pl_config: PseudoLabelConfig, init_model: Path, tmp_path: Path
) -> None:
    cfg = apply_overrides(
        tiny_pl_config,
        ["eval.cuts=", "eval.trials=", "cluster.aggregate=session", "cluster.min_size=1"],
    )
    run_pseudo_label(cfg, init_model, tmp_path / "exp", rounds=1, progress=False)
    labels = read_kaldi_list(tmp_path / "exp" / "round1" / "cluster" / "labels")
    session = {c.id: c.custom["session"] for c in load_cuts(cfg.data.train_cuts)}
    assert set(labels) == set(session)  # min_size 1: every utterance kept
    clusters_of: dict[str, set[str]] = {}
    for utt, cluster in labels.items():
        clusters_of.setdefault(session[utt], set()).add(cluster)
    assert len(clusters_of) > 1 and all(len(c) == 1 for c in clusters_of.values())


def test_oracle_needs_true_speakers(
    tiny_pl_config: PseudoLabelConfig, init_model: Path, tmp_path: Path
) -> None:
    cfg = apply_overrides(
        tiny_pl_config,
        ["eval.cuts=", "eval.trials=", "cluster.method=oracle", "speaker_key=no_such_label"],
    )
    with pytest.raises(ConfigError, match="oracle needs true speakers"):
        run_pseudo_label(cfg, init_model, tmp_path / "exp", rounds=1, progress=False)


LOCK_HOLDER = (
    "import sys\n"
    "from dino_speech.train.exp_lock import experiment_lock\n"
    "with experiment_lock(sys.argv[1]):\n"
    "    print('held', flush=True)\n"
    "    sys.stdin.read()\n"
)


def test_an_experiment_in_use_is_refused(
    one_round: tuple[Path, dict], tiny_pl_config: PseudoLabelConfig, init_model: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    import subprocess
    import sys

    from click.testing import CliRunner

    from dino_speech.cli.main import cli
    from dino_speech.config import save_config
    from dino_speech.train.exp_lock import ExperimentLockedError

    assert not (one_round[0] / ".lock").exists()  # released after a finished run
    exp = tmp_path / "exp"
    child = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(exp)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "held\n"
        with pytest.raises(ExperimentLockedError, match=f"in use by process {child.pid} "):
            run_pseudo_label(tiny_pl_config, init_model, exp, rounds=1, progress=False)
        save_config(tiny_pl_config, tmp_path / "pl.yaml")
        args = ["pseudo-label", "run", "--config", str(tmp_path / "pl.yaml"), "--init",
                str(init_model), "--exp-dir", str(exp), "--rounds", "1", "--quiet"]  # fmt: skip
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and str(child.pid) in lines[0]
        assert sorted(p.name for p in exp.iterdir()) == [".lock"]  # nothing else written
    finally:
        child.kill()
        child.wait()
