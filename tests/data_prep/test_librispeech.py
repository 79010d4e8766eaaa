"""data_prep.librispeech (Lhotse's recipe underneath) on a tiny fake LibriSpeech tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_prep.librispeech import prepare_librispeech_corpus
from dino_speech.data.manifests import load_cuts, read_kaldi_list
from dino_speech.errors import DataError
from dino_speech.eval.trials import read_trials
from tests.data_prep.prepare_cli import one_error_line, run_prepare
from tests.fakes import wav

SPEAKERS = {"dev-clean": ("84", "174", "251"), "train-clean-100": ("19", "26")}


def make_librispeech(root: Path) -> Path:
    """``root/LibriSpeech/<part>/<spk>/<chapter>/<spk>-<chapter>-000N.flac`` + transcripts."""
    libri = root / "LibriSpeech"
    for part, speakers in SPEAKERS.items():
        for s, spk in enumerate(speakers):
            for chapter in (f"{spk}0", f"{spk}1"):
                folder = libri / part / spk / chapter
                lines = []
                for n in range(2):
                    utt = f"{spk}-{chapter}-{n:04d}"
                    wav(folder / f"{utt}.flac", seconds=0.3 + 0.05 * n, seed=s * 10 + n)
                    lines.append(f"{utt} HELLO WORLD NUMBER {n}\n")
                (folder / f"{spk}-{chapter}.trans.txt").write_text("".join(lines))
    (libri / "SPEAKERS.TXT").write_text(
        "; ID  |SEX| SUBSET           |MINUTES| NAME\n84   | F | dev-clean        | 8.02 | A\n"
        "174  | M | dev-clean        | 8.04 | B\n"
    )
    return root


def test_parts_labels_trials_and_rerun(tmp_path: Path):
    corpus = make_librispeech(tmp_path / "corpora")
    out = tmp_path / "out"
    summary = prepare_librispeech_corpus(corpus, out)  # the folder holding LibriSpeech/
    assert "dev-clean" in summary and "train-clean-100" in summary
    dev = {c.id: c for c in load_cuts(out / "librispeech_cuts_dev-clean.jsonl.gz")}
    assert len(dev) == 12 and len(load_cuts(out / "librispeech_cuts_train-clean-100.jsonl.gz")) == 8
    cut = dev["84-840-0001"]
    assert cut.custom["speaker"] == "84" and cut.custom["session"] == "840"
    assert cut.custom["gender"] == "female" and "gender" not in dev["251-2510-0000"].custom
    assert (
        cut.supervisions[0].speaker == "84" and cut.supervisions[0].text == "HELLO WORLD NUMBER 1"
    )
    assert cut.duration == pytest.approx(0.35)
    assert read_kaldi_list(out / "dev-clean" / "utt2sess")["174-1741-0000"] == "1741"

    trials = read_trials(out / "dev-clean" / "trials")
    assert trials.num_targets == 3 * 6 and trials.num_nontargets == 18
    assert not (out / "train-clean-100" / "trials").exists()
    assert "nothing to do" in prepare_librispeech_corpus(corpus / "LibriSpeech", out)

    only = tmp_path / "only"
    prepare_librispeech_corpus(corpus, only, parts=["train-clean-100"])
    assert not (only / "dev-clean").exists()


def test_errors_and_cli(tmp_path: Path):
    corpus = make_librispeech(tmp_path / "corpora")
    with pytest.raises(DataError, match="unknown LibriSpeech parts dev-dirty"):
        prepare_librispeech_corpus(corpus, tmp_path / "o", parts=["dev-dirty"])
    with pytest.raises(DataError, match="no LibriSpeech part folder test-clean"):
        prepare_librispeech_corpus(corpus, tmp_path / "o", parts=["test-clean"])
    out = tmp_path / "out"
    result = run_prepare(
        "librispeech", "--corpus-dir", str(corpus), "--out-dir", str(out), "--parts", "dev-clean"
    )
    assert result.exit_code == 0, result.output
    assert (out / "dev-clean" / "trials").is_file() and (out / "dev-clean" / "wav.scp").is_file()
    line = one_error_line(
        run_prepare("librispeech", "--corpus-dir", str(tmp_path), "--out-dir", str(out))
    )
    assert "no LibriSpeech part folder" in line
