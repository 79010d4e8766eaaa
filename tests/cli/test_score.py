from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from dino_speech.cli.main import cli
from dino_speech.embedding_io import save_npz, write_embeddings
from dino_speech.eval.verification import compute_eer, compute_min_dcf, read_scores


@pytest.fixture
def corpus(tmp_path):
    """8 speakers x 4 utterances of clustered embeddings, a full Kaldi-form trial list."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(8, 16))
    ids, rows = [], []
    for s in range(8):
        for u in range(4):
            ids.append(f"spk{s}-u{u}")
            rows.append(centres[s] + 0.9 * rng.normal(size=16))
    X = np.array(rows, dtype=np.float32)
    scp = write_embeddings(tmp_path / "emb", ids, X)
    lines, labels = [], []
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            same = ids[i][:4] == ids[j][:4]
            lines.append(f"{ids[i]} {ids[j]} {'target' if same else 'nontarget'}")
            labels.append(same)
    (tmp_path / "trials").write_text("\n".join(lines) + "\n")
    cohort = rng.normal(size=(30, 16)).astype(np.float32)
    save_npz(tmp_path / "cohort.npz", [f"c{i}" for i in range(30)], cohort)
    return tmp_path, scp, np.array(labels)


def _json_last_line(output):
    return json.loads(output.strip().splitlines()[-1])


def test_score_json_scores_out_and_det(corpus):
    d, scp, labels = corpus
    runner = CliRunner()
    args = [
        "score",
        "--trials",
        str(d / "trials"),
        "--embeddings",
        str(scp),
        "--json",
        "--scores-out",
        str(d / "scores.txt"),
        "--det-plot",
        str(d / "det.png"),
    ]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    metrics = _json_last_line(result.stdout)
    assert set(metrics) == {"eer", "min_dcf", "targets", "nontargets"}
    assert set(metrics["min_dcf"]) == {"0.01", "0.05"}
    assert (metrics["targets"], metrics["nontargets"]) == (labels.sum(), (~labels).sum())
    _, _, scores = read_scores(d / "scores.txt")
    assert metrics["eer"] == pytest.approx(compute_eer(scores, labels), abs=1e-3)
    assert metrics["min_dcf"]["0.05"] == pytest.approx(
        compute_min_dcf(scores, labels, 0.05), abs=1e-3
    )
    assert 0 < metrics["eer"] < 30  # clustered speakers separate
    assert (d / "det.png").read_bytes()[:4] == b"\x89PNG"

    # eer on the written scores gives the same numbers
    result = runner.invoke(
        cli,
        [
            "eer",
            "--trials",
            str(d / "trials"),
            "--scores",
            str(d / "scores.txt"),
            "--json",
            "--p-target",
            "0.01",
        ],
    )
    assert result.exit_code == 0, result.output
    again = _json_last_line(result.stdout)
    assert again["eer"] == pytest.approx(metrics["eer"], abs=1e-6)
    assert set(again["min_dcf"]) == {"0.01"}


def test_score_with_norms_and_mean(corpus):
    d, scp, _ = corpus
    runner = CliRunner()
    base = ["score", "--trials", str(d / "trials"), "--embeddings", str(d / "emb"), "--json"]
    results, metrics = {}, {}
    for extra in (
        [],
        ["--norm", "snorm", "--cohort", str(d / "cohort.npz")],
        ["--norm", "asnorm", "--cohort", str(d / "cohort.npz"), "--top-n", "5"],
        ["--mean-from", str(d / "cohort.npz")],
        ["--whiten-from", str(d / "cohort.npz")],
        [
            "--whiten-from",
            str(d / "cohort.npz"),
            "--norm",
            "asnorm",
            "--cohort",
            str(d / "cohort.npz"),
        ],
    ):
        result = runner.invoke(cli, base + extra)
        assert result.exit_code == 0, result.output
        results[" ".join(extra[:4])] = _json_last_line(result.stdout)["eer"]
        metrics[" ".join(extra[:4])] = json.dumps(_json_last_line(result.stdout), sort_keys=True)
    assert len(set(results.values())) > 1  # the options change the scores
    assert len(set(metrics.values())) == len(metrics)  # each of them does (asnorm's top-n too)


@pytest.mark.parametrize(
    "trials_text, message",
    [
        (
            "spk0-u0 nobody target\nspk0-u0 spk1-u1 nontarget\nghost spk1-u1 nontarget\n",
            "2 utterances in the trial list have no embedding",
        ),
        ("spk0-u0 spk0-u1 target\n", "only target trials"),
        ("\n", "empty"),
        ("spk0-u0 spk0-u1 yes\n", "trials:1: expected"),
    ],
)
def test_score_user_errors_are_one_line(corpus, trials_text, message):
    d, scp, _ = corpus
    (d / "trials").write_text(trials_text)
    result = CliRunner().invoke(
        cli, ["score", "--trials", str(d / "trials"), "--embeddings", str(scp)]
    )
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], result.output


def test_norm_without_cohort_and_missing_scores(corpus):
    d, scp, _ = corpus
    runner = CliRunner()
    result = runner.invoke(
        cli, ["score", "--trials", str(d / "trials"), "--embeddings", str(scp), "--norm", "snorm"]
    )
    assert result.exit_code == 2 and "--cohort" in result.output
    result = runner.invoke(
        cli,
        ["score", "--trials", str(d / "trials"), "--embeddings", str(scp), "--cohort", str(scp)],
    )  # a cohort without --norm would be silently unused
    assert result.exit_code == 2 and "only used with --norm" in result.output
    (d / "s.txt").write_text("spk0-u0 spk0-u1 0.5\n")
    result = runner.invoke(
        cli, ["eer", "--trials", str(d / "trials"), "--scores", str(d / "s.txt")]
    )
    assert result.exit_code == 2 and "trials have no score" in result.output
    assert "Traceback" not in result.output


def test_json_out_records_the_result_and_a_rerun_does_nothing(corpus):
    d, scp, _ = corpus
    runner = CliRunner()
    out = d / "eval" / "score.json"
    args = ["score", "--trials", str(d / "trials"), "--embeddings", str(scp),
            "--json-out", str(out), "--json"]  # fmt: skip
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    record = json.loads(out.read_text())
    printed = _json_last_line(first.output)
    assert record["eer"] == printed["eer"] and record["min_dcf"] == printed["min_dcf"]
    assert record["trials"] == str((d / "trials").resolve())
    assert record["embeddings"] == str(scp.resolve())
    threshold = float(first.output.split("(threshold ")[1].split(")")[0])
    assert record["eer_threshold"] == pytest.approx(threshold, abs=1e-4)
    # the same request again: nothing computed, the file untouched
    mtime = out.stat().st_mtime_ns
    again = runner.invoke(cli, args)
    assert again.exit_code == 0 and "scores up to date" in again.output
    assert "minDCF" not in again.output and out.stat().st_mtime_ns == mtime
    # another setting is another request
    other = runner.invoke(cli, [*args, "--p-target", "0.1"])
    assert other.exit_code == 0 and "up to date" not in other.output
    assert set(json.loads(out.read_text())["min_dcf"]) == {"0.1"}
    # verify reads the EER threshold from the record
    from dino_speech.eval.threshold_store import threshold_from_file

    stored = threshold_from_file(out)
    assert stored.threshold == pytest.approx(record["eer_threshold"])
    assert stored.trials == record["trials"] and stored.eer == pytest.approx(record["eer"])


def test_score_whiten_from_errors_are_one_line(corpus, tmp_path):
    d, scp, _ = corpus
    base = ["score", "--trials", str(d / "trials"), "--embeddings", str(scp)]
    both = ["--whiten-from", str(d / "cohort.npz"), "--mean-from", str(d / "cohort.npz")]
    result = CliRunner().invoke(cli, base + both)
    assert result.exit_code == 2 and "drop --mean-from" in result.output
    other = write_embeddings(tmp_path / "other", ["x", "y", "z"], np.ones((3, 5), np.float32))
    result = CliRunner().invoke(cli, [*base, "--whiten-from", str(other)])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "--whiten-from embeddings have dimension 5, not 16" in lines[0]
