"""data_prep.audio_folder (``dino-speech prepare audio``) on tiny generated folders."""

from __future__ import annotations

import functools
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep import corpus as corpus_module
from data_prep.audio_folder import prepare_audio_folder, utterance_ids
from data_prep.splits import Split
from dino_speech.data.manifests import load_cuts, read_kaldi_list
from dino_speech.errors import DataError
from dino_speech.eval.trials import read_trials
from tests.data_prep.prepare_cli import one_error_line, run_prepare
from tests.fakes import wav

BY_FOLDER = r"(?P<speaker>[^/]+)/[^/]+$"


def make_folder(root: Path) -> Path:
    """Nested folders, odd names, a stereo flac, an 8 kHz wav, and four bad files."""
    wav(root / "alice" / "one.wav", seconds=1.0, seed=1)
    wav(root / "alice" / "two.WAV", seconds=1.0, seed=2)  # upper-case extension
    wav(root / "bob" / "take 1.wav", seconds=1.0, seed=3)  # a space
    wav(root / "bob" / "take_1.wav", seconds=1.0, seed=4)  # same id as 'take 1' once sanitised
    wav(root / "bob" / "deep" / "x.wav", seconds=1.0, seed=5, sample_rate=8000)  # 8 kHz
    wav(root / "bob" / "deep" / "x.flac", seconds=1.0, seed=6)  # same id as x.wav
    wav(root / "zoë" / "café.wav", seconds=1.0, seed=7)  # unicode folder and file
    rng = np.random.default_rng(0)
    (root / "carol").mkdir()
    sf.write(root / "carol" / "stereo.flac", 0.05 * rng.standard_normal((16000, 2)), 16000)
    wav(root / "carol" / "mono.wav", seconds=1.0, seed=8)
    (root / "carol" / "notes.txt").write_text("not audio, wrong extension: not listed")
    (root / "carol" / ".hidden.wav").write_bytes(b"hidden files are not listed")
    # bad files
    (root / "bad").mkdir()
    (root / "bad" / "text.wav").write_text("this is not a wav file\n")
    sf.write(root / "bad" / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    nan = np.full(16000, 0.1, dtype=np.float32)
    nan[100] = np.nan
    sf.write(root / "bad" / "nan.wav", nan, 16000, subtype="FLOAT")
    wav(root / "bad" / "short.wav", seconds=0.1, seed=9)
    return root


def test_utterance_ids_sanitised_unique_and_stable():
    rels = ["a b.wav", "a_b.wav", "x.wav", "x.flac", "d/é f.wav", "d/plain.wav"]
    ids = utterance_ids(rels)
    assert ids["d/plain.wav"] == "d-plain" and ids["d/é f.wav"] == "d-__f"
    assert ids["a b.wav"].startswith("a_b-") and ids["a_b.wav"].startswith("a_b-")
    assert ids["x.wav"].startswith("x-") and ids["x.flac"].startswith("x-")
    assert len(set(ids.values())) == len(rels)
    assert utterance_ids(list(reversed(rels))) == ids  # depends on the path only
    assert utterance_ids(["x.wav", "x.flac", "other.wav"])["x.wav"] == ids["x.wav"]


def test_whole_folder_one_part_and_skipped(tmp_path: Path):
    corpus = make_folder(tmp_path / "audio")
    out = tmp_path / "out"
    summary = prepare_audio_folder(corpus, out)
    cuts = {c.id: c for c in load_cuts(out / "audio_cuts_all.jsonl.gz")}
    assert len(cuts) == 9
    assert "alice-one" in cuts and "alice-two" in cuts and "carol-stereo" in cuts
    assert "zo_-caf_" in cuts and "bob-deep-x" not in cuts
    assert sum(i.startswith("bob-take_1-") for i in cuts) == 2
    assert sum(i.startswith("bob-deep-x-") for i in cuts) == 2
    assert cuts["carol-stereo"].recording.num_channels == 2
    rates = Counter(c.sampling_rate for c in cuts.values())
    assert rates == {16000: 8, 8000: 1}
    assert all(not c.custom or "speaker" not in c.custom for c in cuts.values())

    skipped = dict(
        line.split("\t") for line in (out / "skipped").read_text(encoding="utf-8").splitlines()
    )
    assert sorted(skipped) == ["bad/empty.wav", "bad/nan.wav", "bad/short.wav", "bad/text.wav"]
    assert "NaN" in skipped["bad/nan.wav"] and "empty" in skipped["bad/empty.wav"]
    assert "min-duration" in skipped["bad/short.wav"]
    assert "skipped: 4" in summary and "all" in summary
    scp = read_kaldi_list(out / "all" / "wav.scp")
    assert set(scp) == set(cuts) and Path(scp["alice-one"]).is_file()
    assert not (out / "all" / "utt2spk").exists() and not (out / "dev").exists()


def test_speaker_regex_and_dev_split(tmp_path: Path):
    corpus = tmp_path / "audio"
    for s in range(6):
        for u in range(3):
            wav(corpus / f"spk{s}" / "sess" / f"u{u}.wav", seconds=0.6, seed=10 * s + u)
    wav(corpus / "loose.wav", seconds=0.6)  # matches no regex: train, no speaker
    regex = r"^(?P<speaker>[^/]+)/"
    split = Split(dev_speakers=3, seed=1, nontarget_ratio=2.0)
    out = tmp_path / "out"
    summary = prepare_audio_folder(corpus, out, speaker_regex=regex, split=split)
    train = load_cuts(out / "audio_cuts_train.jsonl.gz")
    dev = load_cuts(out / "audio_cuts_dev.jsonl.gz")
    dev_spk = {c.custom["speaker"] for c in dev}
    train_spk = {c.custom["speaker"] for c in train if c.custom}
    assert len(dev_spk) == 3 and len(train_spk) == 3 and not dev_spk & train_spk
    assert len(dev) == 9 and len(train) == 10 and "loose" in {c.id for c in train}
    assert dev[0].supervisions[0].speaker == dev[0].custom["speaker"]
    assert "no speaker: 1" in summary

    trials = read_trials(out / "dev" / "trials")
    assert trials.num_targets == 3 * 3 and trials.num_nontargets == 18
    pairs = list(zip(trials.enroll, trials.test, strict=True))
    assert len(set(pairs)) == len(pairs) and all(a < b for a, b in pairs)
    assert set(trials.enroll) | set(trials.test) <= {c.id for c in dev}
    first = sorted(dev_spk)[0]
    assert read_kaldi_list(out / "dev" / "utt2spk")[f"{first}-sess-u0"] == first

    # same seed, same speakers -> same split and trials; another seed -> another split
    again = tmp_path / "again"
    prepare_audio_folder(corpus, again, speaker_regex=regex, split=split)
    assert (again / "dev" / "trials").read_text() == (out / "dev" / "trials").read_text()
    splits = set()
    for seed in range(6):
        other = tmp_path / f"seed{seed}"
        prepare_audio_folder(corpus, other, speaker_regex=regex, split=Split(3, seed=seed))
        splits.add((other / "dev" / "spk2utt").read_text())
    assert len(splits) > 1

    # fraction: half of the 6 speakers; ratio capped at the 27 non-target pairs there are
    frac = tmp_path / "frac"
    prepare_audio_folder(
        corpus, frac, speaker_regex=regex, split=Split(dev_fraction=0.5, nontarget_ratio=10)
    )
    assert read_trials(frac / "dev" / "trials").num_nontargets == 27


def test_errors(tmp_path: Path):
    corpus = tmp_path / "audio"
    wav(corpus / "a" / "1.wav", seconds=0.6)
    wav(corpus / "a" / "2.wav", seconds=0.6)
    with pytest.raises(DataError, match="named group 'speaker'"):
        prepare_audio_folder(corpus, tmp_path / "o", speaker_regex=r"([^/]+)/")
    with pytest.raises(DataError, match="not a valid regex"):
        prepare_audio_folder(corpus, tmp_path / "o", speaker_regex=r"(?P<speaker>[")
    with pytest.raises(DataError, match="need speakers"):
        prepare_audio_folder(corpus, tmp_path / "o", split=Split(dev_speakers=2))
    with pytest.raises(DataError, match="at least one must be left"):
        prepare_audio_folder(corpus, tmp_path / "o", speaker_regex=BY_FOLDER, split=Split(2))
    with pytest.raises(DataError, match="mutually exclusive"):
        Split(dev_speakers=2, dev_fraction=0.5)
    with pytest.raises(DataError, match="no audio files"):
        prepare_audio_folder(corpus, tmp_path / "o", extensions=("ogg",))


def test_cli_all_bad_rerun_and_added_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # the listing's progress bar goes to stderr, beside the error line (a terminal erases it)
    monkeypatch.setattr(corpus_module, "tqdm", functools.partial(corpus_module.tqdm, disable=True))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.wav").write_text("text")
    wav(bad / "b.flac", seconds=0.1)
    out = tmp_path / "out"
    line = one_error_line(run_prepare("audio", "--corpus-dir", str(bad), "--out-dir", str(out)))
    assert "no usable audio" in line and "2 files were skipped" in line
    assert len((out / "skipped").read_text().splitlines()) == 2

    corpus = tmp_path / "audio"
    for s in ("s1", "s2", "s3"):
        wav(corpus / s / "a.wav", seconds=0.6)
        wav(corpus / s / "b.wav", seconds=0.6)
    args = ["--corpus-dir", str(corpus), "--out-dir", str(out), "--speaker-regex", BY_FOLDER]
    args += ["--dev-speakers", "2", "--num-jobs", "2", "--extensions", "WAV"]
    result = run_prepare("audio", *args)
    assert result.exit_code == 0, result.output
    assert "train" in result.output and "trials: 4 (2 target, 2 non-target)" in result.output
    for name in ("audio_cuts_train.jsonl.gz", "audio_cuts_dev.jsonl.gz", "dev/trials"):
        assert (out / name).is_file()
    assert (out / "skipped").read_text() == ""
    rerun = run_prepare("audio", *args)
    assert rerun.exit_code == 0 and "already prepared" in rerun.output
    wav(corpus / "s1" / "c.wav", seconds=0.6)
    redo = run_prepare("audio", *args)
    assert redo.exit_code == 0 and "already prepared" not in redo.output
    assert (
        len(load_cuts(out / "audio_cuts_train.jsonl.gz"))
        + len(load_cuts(out / "audio_cuts_dev.jsonl.gz"))
        == 7
    )
    line = one_error_line(run_prepare("audio", *args, "--dev-fraction", "0.5"))
    assert "mutually exclusive" in line
