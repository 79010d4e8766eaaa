from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from dino_speech.cli.main import cli
from dino_speech.embedding_io import write_embeddings


def _prepare(tmp_path):
    rng = np.random.default_rng(0)
    emotions = ["ang", "hap", "neu", "sad"]
    dirs = rng.normal(size=(4, 10)) * 3
    ids, rows, emo, sess = [], [], [], []
    for s in range(4):
        for k in range(24):
            utt = f"Ses{s}_u{k:02d}"
            ids.append(utt)
            rows.append(dirs[k % 4] + rng.normal(size=10))
            emo.append(f"{utt} {emotions[k % 4]}")
            sess.append(f"{utt} Ses{s}")
    ids.append("unlabelled")
    rows.append(np.zeros(10))
    write_embeddings(tmp_path / "emb", ids, np.array(rows))
    (tmp_path / "utt2emo").write_text("\n".join(emo) + "\n")
    (tmp_path / "utt2sess").write_text("\n".join(sess) + "\n")


def _eval_emotion(*args):
    """``dino-speech eval-emotion --embeddings emb ARGS...`` in the working directory."""
    return CliRunner().invoke(cli, ["eval-emotion", "--embeddings", "emb", *args])


def test_eval_emotion_json_and_plot(tmp_path, monkeypatch):
    _prepare(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = _eval_emotion(
        "--labels", "utt2emo", "--groups", "utt2sess", "--json",
        "--confusion-plot", "cm.png", "--predictions-out", "pred.txt",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(last) == {"micro_f1", "macro_f1", "folds"}
    assert last["folds"] == 4 and last["micro_f1"] > 80
    assert "leave-one-group-out" in result.stdout
    assert (tmp_path / "cm.png").read_bytes()[:4] == b"\x89PNG"
    lines = (tmp_path / "pred.txt").read_text().splitlines()
    assert len(lines) == 96 and all(len(line.split()) == 3 for line in lines)
    correct = sum(line.split()[1] == line.split()[2] for line in lines)
    assert 100 * correct / 96 == last["micro_f1"]


def test_eval_emotion_user_errors(tmp_path, monkeypatch):
    _prepare(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad_emo").write_text("ghost1 ang\nghost2 sad\nSes0_u00 ang\n")
    result = _eval_emotion("--labels", "bad_emo")
    assert result.exit_code == 2
    assert "2 of 3 labelled utterances have no embedding" in result.output
    assert "Traceback" not in result.output
    result = _eval_emotion("--labels", "utt2emo", "--folds", "1")
    assert result.exit_code == 2 and "--folds" in result.output


def test_json_out_several_label_lists_and_classes(tmp_path, monkeypatch):
    _prepare(tmp_path)
    monkeypatch.chdir(tmp_path)
    lines = (tmp_path / "utt2emo").read_text().splitlines()
    (tmp_path / "emo_a").write_text("\n".join(lines[48:]) + "\n")  # split, out of order
    (tmp_path / "emo_b").write_text("\n".join(lines[:48]) + "\n")
    one = _eval_emotion("--labels", "utt2emo", "--groups", "utt2sess", "--json-out", "one.json")
    two = _eval_emotion("--labels", "emo_a", "--labels", "emo_b", "--groups", "utt2sess",
                        "--json-out", "two.json")  # fmt: skip
    assert one.exit_code == 0 and two.exit_code == 0, one.output + two.output
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("one.json", "two.json"))
    assert a["micro_f1"] == b["micro_f1"] and a["scheme"] == b["scheme"] == (
        "leave-one-group-out (4 groups)"
    )
    assert {"micro_f1", "macro_f1", "uar", "folds", "scheme", "made_from"} <= set(a)
    mtime = (tmp_path / "one.json").stat().st_mtime_ns
    again = _eval_emotion("--labels", "utt2emo", "--groups", "utt2sess", "--json-out", "one.json")
    assert "emotion probe up to date" in again.output
    assert (tmp_path / "one.json").stat().st_mtime_ns == mtime
    kept = _eval_emotion("--labels", "utt2emo", "--groups", "utt2sess", "--classes", "ang,sad",
                         "--json-out", "two.json")  # fmt: skip
    assert kept.exit_code == 0, kept.output
    assert json.loads((tmp_path / "two.json").read_text())["classes"] == ["ang", "sad"]
    assert "utterances: 48" in kept.output
    twice = _eval_emotion("--labels", "utt2emo", "--labels", "emo_a", "--groups", "utt2sess")
    assert twice.exit_code == 2 and "is in more than one of" in twice.output
