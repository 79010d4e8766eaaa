"""The egs/ stage scripts: shellcheck, --help, option errors, and real runs at a tiny size.

The mini recipe runs end to end in the default suite (every stage, with a few training steps
instead of minutes) and is rerun to show that a finished recipe only prints its table. The
emotion and VoxCeleb recipes run on small fake corpora in the slow suite (``-m slow``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fakes import make_cremad, make_iemocap, make_msp_podcast, make_voxceleb1, make_voxceleb2

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted([*REPO.glob("egs/**/*.sh"), *REPO.glob("utils/*.sh")], key=lambda p: str(p))
RECIPES = {
    "egs/mini/run.sh": ["--dino-minutes", "--pl-rounds", "--speakers", "--nj"],
    "egs/voxceleb/dino/run.sh": ["--ngpu", "--vox1-dir", "--average-last", "--cohort-size"],
    "egs/speechocean762/dino/run.sh": ["--corpus-dir", "--speaker-regex", "--ceiling", "--nj"],
    "egs/iemocap/emotion/run.sh": ["--corpus-dir", "--model", "--classifier"],
    "egs/cremad/emotion/run.sh": ["--corpus-dir", "--model"],
    "egs/msp_podcast/emotion/run.sh": ["--test-part", "--classes"],
    "egs/digits/ssl/run.sh": ["--methods", "--epochs", "--study-steps"],
}
# a few steps instead of minutes; small noise banks; no TensorBoard
TINY_DINO = (
    "train.epochs=1 train.steps_per_epoch=1 data.batch_size=8 data.num_workers=0 "
    "data.augment.synthetic_bank_size=4 data.augment.bank_seconds=1.0 train.tensorboard=false"
)
TINY_PL = (
    "data.batch_size=8 data.num_workers=0 data.augment.synthetic_bank_size=4 "
    "data.augment.bank_seconds=1.0 embed.num_workers=0 cluster.method=kmeans "
    "cluster.num_clusters=4 cluster.min_size=2 cluster.max_size=null finetune.crop_seconds=1.0 "
    "finetune.frozen_epochs=1 finetune.full_epochs=1 finetune.steps_per_epoch=1 "
    "finetune.warmup_epochs=0 train.tensorboard=false eval.cuts= eval.trials="
)
NUMBER = r"\d+\.\d+"


def run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``script`` (relative to the repository) from ``cwd``; stdout and stderr merged."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        ["bash", str(REPO / script), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_every_stage_script_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (pip install -e '.[dev]' installs it)")
    assert len(SCRIPTS) >= 7, SCRIPTS
    result = subprocess.run(
        [shellcheck, "-x", *[str(p.relative_to(REPO)) for p in SCRIPTS]],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", sorted(RECIPES))
def test_help_lists_every_option(script: str, tmp_path: Path) -> None:
    result = run(script, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    assert "--stage" in result.stdout and "--stop-stage" in result.stdout
    for option in RECIPES[script]:
        assert re.search(rf"^  {option} +\S", result.stdout, re.M), (option, result.stdout)
    assert list(tmp_path.iterdir()) == []  # --help writes nothing


@pytest.mark.parametrize("script", sorted(RECIPES))
def test_unknown_options_and_arguments_fail(script: str, tmp_path: Path) -> None:
    result = run(script, "--stgae", "2", cwd=tmp_path)
    assert result.returncode == 2 and "unknown option --stgae" in result.stdout
    result = run(script, "--stage", "9", "extra", cwd=tmp_path)
    assert result.returncode == 2 and "unexpected arguments: extra" in result.stdout


def test_emotion_recipes_need_a_model(tmp_path: Path) -> None:
    result = run("egs/cremad/emotion/run.sh", "--corpus-dir", "x", cwd=tmp_path)
    assert result.returncode == 2 and "--model is required" in result.stdout


def _mtimes(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)): p.stat().st_mtime_ns
        for p in root.rglob("*")
        if p.is_file() and p.name != "results.md"
    }


def test_mini_recipe_end_to_end_then_rerun_is_a_no_op(
    synthetic_corpus: Path, synthetic_corpus_settings: dict, tmp_path: Path
) -> None:
    corpus = synthetic_corpus_settings
    data = tmp_path / "data"
    shutil.copytree(synthetic_corpus, data)  # stage 0 then finds it complete
    exp = tmp_path / "exp"
    args = [
        "--data-dir", str(data), "--exp-dir", str(exp), "--nj", "1",
        "--speakers", str(corpus["num_speakers"]),
        "--utts-per-speaker", str(corpus["utts_per_speaker"]),
        "--duration-range", ",".join(str(d) for d in corpus["duration_range"]),
        "--test-speakers", str(corpus["num_test_speakers"]),
        "--dino-overrides", TINY_DINO, "--pl-overrides", TINY_PL,
    ]  # fmt: skip
    first = run("egs/mini/run.sh", *args, cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-5000:]
    for stage in range(8):
        assert f"stage {stage}:" in first.stdout, stage
    table = (exp / "results.md").read_text()
    rows = {
        "log-Mel statistics": r"log-Mel statistics \(logmel-stats, no training\)",
        "DINO": r"DINO teacher \(ecapa_tiny, 1/1 steps\)",
        "pseudo-labeling": r"DINO \+ 1 pseudo-labeling round\(s\)",
    }
    for name, label in rows.items():
        pattern = rf"^\| {label} \| {NUMBER} \| {NUMBER} \| {NUMBER} \| {NUMBER} \|$"
        assert re.search(pattern, table, re.M), (name, table)
    assert re.search(r"^Machine: .+, \d+ cores, .+device cpu\.", table, re.M), table
    assert table in first.stdout
    for name in ("baseline", "dino", "pl"):
        assert (exp / "eval" / name / "xvector.scp").is_file()
        assert (exp / "eval" / name / "score.png").is_file()  # the DET curve
    # the baseline row is the logmel-stats EER of the scoring command's JSON
    score = (exp / "eval" / "baseline" / "score.json").read_text()
    eer = float(re.search(r'"eer": ([0-9.]+)', score).group(1))
    assert f"| {eer:.2f} |" in table

    before = _mtimes(tmp_path)
    second = run("egs/mini/run.sh", *args, cwd=tmp_path)
    assert second.returncode == 0, second.stdout[-3000:]
    # every command finds its own record of the same request and does nothing
    assert "already trained" in second.stdout and "pseudo-labeling already done" in second.stdout
    # embeddings and scores of 3 models, 3 emotion probes
    assert second.stdout.count("up to date") == 9
    assert not re.search(r"wrote \d+ embeddings|^EER: |micro-F1 \(accuracy\)", second.stdout, re.M)
    assert _mtimes(tmp_path) == before
    assert (exp / "results.md").read_text() == table

    # another option of a stage redoes that stage only (its output records the arguments)
    third = run("egs/mini/run.sh", *args, "--classifier", "mlp", "--stage", "6", cwd=tmp_path)
    assert third.returncode == 0, third.stdout[-3000:]
    assert "up to date" not in third.stdout
    assert third.stdout.count("micro-F1 (accuracy)") == 3  # the three probes ran again
    assert "mlp probe" in (exp / "results.md").read_text()


def test_digits_recipe_trains_then_rerun_only_prints_the_table(tmp_path: Path) -> None:
    args = ["--methods", "simsiam", "--epochs", "1", "--num-threads", "1"]
    first = run("egs/digits/ssl/run.sh", *args, cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-3000:]
    run_dir = tmp_path / "exp" / "digits_ssl" / "simsiam"
    table = (tmp_path / "exp" / "digits_ssl" / "results.md").read_text()
    assert re.search(r"^\| simsiam ", table, re.M) and "random init" in table, table
    before = _mtimes(run_dir)
    second = run("egs/digits/ssl/run.sh", *args, cwd=tmp_path)
    assert second.returncode == 0, second.stdout[-3000:]
    assert "already trained with this config" in second.stdout
    assert _mtimes(run_dir) == before
    assert (tmp_path / "exp" / "digits_ssl" / "results.md").read_text() == table
    # another setting trains again
    third = run("egs/digits/ssl/run.sh", *args[:2], "--epochs", "2", cwd=tmp_path)
    assert third.returncode == 0 and "already trained" not in third.stdout
    assert _mtimes(run_dir) != before


def test_real_speech_recipe_on_an_audio_folder_then_rerun_is_a_no_op(
    synthetic_corpus: Path, tmp_path: Path
) -> None:
    # Any folder of audio with a speaker per folder: the synthetic corpus's wavs/<spk>/*.wav.
    corpus = tmp_path / "recordings"
    shutil.copytree(synthetic_corpus / "wavs", corpus)
    speakers = sorted(p.name for p in corpus.iterdir())
    exp, data = tmp_path / "exp", tmp_path / "data"
    tiny_dino = f"{TINY_DINO} data.crops.num_local=2"
    tiny_ceiling = TINY_PL.replace("cluster.method=kmeans cluster.num_clusters=4 ", "").replace(
        "finetune.frozen_epochs=1", "finetune.frozen_epochs=0"
    )
    args = [
        "--corpus-dir", str(corpus), "--data-dir", str(data), "--exp-dir", str(exp),
        "--dev-speakers", "3", "--nj", "1", "--dino-minutes", "5",
        "--dino-overrides", tiny_dino, "--pl-overrides", TINY_PL, "--pl-rounds", "2",
        "--ceiling", "true", "--ceiling-minutes", "1",
        "--ceiling-overrides", tiny_ceiling,
    ]  # fmt: skip
    first = run("egs/speechocean762/dino/run.sh", *args, cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-5000:]
    for stage in range(8):
        assert f"stage {stage}:" in first.stdout, stage
    dev = {line.split()[1] for line in (data / "dev" / "utt2spk").read_text().splitlines()}
    train = {line.split()[1] for line in (data / "train" / "utt2spk").read_text().splitlines()}
    assert len(dev) == 3 and not dev & train and dev | train == set(speakers)
    table = (exp / "results.md").read_text()
    numbers = r" \| ".join([NUMBER] * 6)  # EER, 2 minDCF; AS-norm EER and minDCF; whitened EER
    for label in (
        r"log-Mel statistics \(logmel-stats, no training\)",
        r"ecapa_tiny, untrained",
        r"DINO teacher \(ecapa_tiny, 1 steps, no labels\)",
        r"DINO teacher, pooled statistics \(the input of its last layer\)",
        r"DINO \+ pseudo-labeling round 1",
        r"DINO \+ pseudo-labeling round 2",
        r"supervised ceiling \(true labels, same encoder and time\)",
    ):
        assert re.search(rf"^\| {label} \| {numbers} \| .+ \|$", table, re.M), (label, table)
    assert re.search(r"round 1 \| .*\d+ clusters, NMI \d\.\d+", table), table
    assert table in first.stdout
    # the ceiling trained on the true training speakers
    ceiling = (exp / "ceiling" / "round1" / "cluster" / "quality.json").read_text()
    assert '"purity": 1.0' in ceiling
    # the baseline row is the logmel-stats EER of the scoring command's JSON
    score = (exp / "eval" / "baseline" / "score.json").read_text()
    eer = float(re.search(r'"eer": ([0-9.]+)', score).group(1))
    assert f"| {eer:.2f} |" in table
    # its AS-norm columns are those of the scores normalised against the training utterances
    asnorm = json.loads((exp / "eval" / "baseline" / "asnorm.json").read_text())
    assert f"| {asnorm['eer']:.2f} | {asnorm['min_dcf']['0.01']:.3f} |" in table
    # and its whitened EER the cosine after whitening learnt from those same utterances
    whitened = json.loads((exp / "eval" / "baseline" / "whitened.json").read_text())
    assert f"| {asnorm['min_dcf']['0.01']:.3f} | {whitened['eer']:.2f} |" in table
    cohort = (exp / "eval" / "baseline" / "cohort" / "xvector.scp").read_text().splitlines()
    assert len(cohort) == sum(1 for _ in (data / "train" / "wav.scp").open())

    before = _mtimes(tmp_path)
    second = run("egs/speechocean762/dino/run.sh", *args, cwd=tmp_path)
    assert second.returncode == 0, second.stdout[-3000:]
    assert "already prepared" in second.stdout
    assert "already trained" in second.stdout and "pseudo-labeling already done" in second.stdout
    assert not re.search(r"wrote \d+ embeddings|^EER: ", second.stdout, re.M)
    assert _mtimes(tmp_path) == before
    assert (exp / "results.md").read_text() == table


@pytest.mark.slow
def test_real_speech_recipe_prepares_speechocean762(tmp_path: Path) -> None:
    corpus = REPO.parent / "shared" / "data" / "speechocean762_train"
    if not corpus.is_dir():
        pytest.skip(f"{corpus} is not here (it is not part of a clone)")
    args = ["--corpus-dir", str(corpus), "--stop-stage", "1", "--nj", "2"]
    result = run("egs/speechocean762/dino/run.sh", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    data = tmp_path / "data" / "speechocean762"
    dev = {line.split()[1] for line in (data / "dev" / "utt2spk").read_text().splitlines()}
    train = {line.split()[1] for line in (data / "train" / "utt2spk").read_text().splitlines()}
    assert (len(train), len(dev)) == (100, 25) and not dev & train
    trials = (data / "dev" / "trials").read_text().splitlines()
    assert sum(t.endswith(" target") for t in trials) == 25 * 20 * 19 // 2
    # log-Mel statistics separate real speakers somewhat, far from perfectly
    score = (tmp_path / "exp" / "speechocean762" / "eval" / "baseline" / "score.json").read_text()
    assert 5.0 < float(re.search(r'"eer": ([0-9.]+)', score).group(1)) < 25.0


EMOTION_RECIPES = {
    "iemocap": ("egs/iemocap/emotion/run.sh", make_iemocap, "leave-one-group-out (5 groups)"),
    "cremad": ("egs/cremad/emotion/run.sh", make_cremad, "leave-one-group-out (6 groups)"),
    "msp_podcast": (
        "egs/msp_podcast/emotion/run.sh",
        make_msp_podcast,
        "fixed split (24 train, 12 test utterances)",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("corpus", sorted(EMOTION_RECIPES))
def test_emotion_recipe_on_a_fake_corpus(corpus: str, tmp_path: Path) -> None:
    script, make, scheme = EMOTION_RECIPES[corpus]
    make(tmp_path / "corpus", learnable=True)
    args = ["--corpus-dir", "corpus", "--model", "logmel-stats", "--device", "cpu", "--nj", "1"]
    first = run(script, *args, cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-3000:]
    results = tmp_path / "exp" / f"{corpus}_emotion" / "results.md"
    row = re.search(r"^\| logmel-stats \| (\S+) \| (\S+) \| (\S+) \| (.+) \|$",
                    results.read_text(), re.M)  # fmt: skip
    assert row is not None, results.read_text()
    # every emotion is a tone of its own pitch: wrong labels, folds or splits would show
    assert float(row.group(1)) >= 90.0 and row.group(4) == scheme
    second = run(script, *args, cwd=tmp_path)
    assert second.returncode == 0 and second.stdout.count("up to date") >= 2
    assert "already prepared" in second.stdout
    # another model redoes the embeddings and the probe, not the preparation
    model = tmp_path / "tiny.pt"
    _save_tiny_model(model)
    third = run(script, *args[:2], "--model", str(model), "--device", "cpu", cwd=tmp_path)
    assert third.returncode == 0, third.stdout[-3000:]
    assert "already prepared" in third.stdout and "stage 1: embedding" in third.stdout
    assert f"| {model} |" in results.read_text()


def _save_tiny_model(path: Path) -> None:
    import torch

    from dino_speech.config import EncoderConfig, FbankConfig
    from dino_speech.models.embedder_file import save_embedder
    from dino_speech.models.registry import build_encoder

    torch.manual_seed(0)
    cfg = EncoderConfig("resnet_tiny", {"base_channels": 4, "embed_dim": 16})
    features = FbankConfig(num_mel_bins=24, mean_norm="utterance")
    encoder = build_encoder(cfg.name, feat_dim=24, **cfg.kwargs)
    save_embedder(path, encoder, cfg, features, {"source": "test"})


@pytest.mark.slow
def test_voxceleb_recipe_on_a_fake_corpus(tmp_path: Path) -> None:
    vox1 = make_voxceleb1(tmp_path / "corpus" / "voxceleb1", learnable=True)
    vox2 = make_voxceleb2(tmp_path / "corpus" / "voxceleb2", learnable=True)
    tiny_dino = f"{TINY_DINO} data.min_duration=0 model.name=resnet_tiny dino.out_dim=64"
    args = [
        "--vox1-dir", str(vox1), "--vox2-dir", str(vox2), "--ngpu", "0", "--nj", "1",
        "--dino-overrides", tiny_dino, "--pl-config", str(REPO / "configs/pseudo_label_mini.yaml"),
        "--pl-rounds", "1", "--pl-overrides", TINY_PL.replace("num_clusters=4", "num_clusters=3"),
        "--cohort-size", "10", "--top-n", "5",
    ]  # fmt: skip
    result = run("egs/voxceleb/dino/run.sh", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-5000:]
    exp = tmp_path / "exp" / "voxceleb_dino"
    table = (exp / "results.md").read_text()
    for system in ("DINO teacher", r"\+ 1 pseudo-label rounds"):
        for trials in ("vox1_o_clean", "vox1_e_clean", "vox1_h_clean"):
            numbers = r" \| ".join([NUMBER] * 4)
            assert re.search(rf"^\| {system}, {trials} \| {numbers} \|$", table, re.M), table
    # the AS-norm cohort: a seeded draw of --cohort-size utterances, the same for each model
    cohorts = [exp / "eval" / name / "cohort" / "xvector.scp" for name in ("dino", "pl")]
    ids = [[line.split()[0] for line in c.read_text().splitlines()] for c in cohorts]
    assert len(ids[0]) == 10 and ids[0] == ids[1]
    assert {p.name for p in (exp / "export").iterdir()} >= {"pl_model.pt", "pl_model.onnx"}
    again = run("egs/voxceleb/dino/run.sh", *args, cwd=tmp_path)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "already trained" in again.stdout and "already done" in again.stdout
    assert not re.search(r"wrote \d+ embeddings|^EER: ", again.stdout, re.M)
