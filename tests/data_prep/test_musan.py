"""data_prep.musan on a fake MUSAN tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_prep.musan import prepare_musan
from dino_speech.data.manifests import load_cuts, read_kaldi_list
from dino_speech.errors import DataError
from tests.data_prep.prepare_cli import one_error_line, run_prepare
from tests.fakes import MUSAN_FILES, make_musan


def _expected(categories=("music", "noise", "speech")) -> dict[str, str]:
    return {
        rec_id: category
        for category in categories
        for ids in MUSAN_FILES[category].values()
        for rec_id in ids
    }


def test_categories_in_custom(tmp_path: Path):
    corpus = make_musan(tmp_path / "musan")
    out = tmp_path / "out"
    summary = prepare_musan(corpus, out)
    assert "music" in summary and "musan_cuts_all.jsonl.gz" in summary

    cuts = load_cuts(out / "musan_cuts_all.jsonl.gz")
    assert {c.id: c.custom["category"] for c in cuts} == _expected()
    assert read_kaldi_list(out / "all" / "utt2category") == _expected()
    vocal = cuts["music-fma-0001"]
    assert vocal.custom["vocals"] is True and vocal.custom["genres"] == ["classical", "jazz"]
    assert cuts["music-fma-0000"].custom["vocals"] is False
    assert cuts["noise-free-sound-0000"].duration == pytest.approx(0.3)
    assert cuts["noise-free-sound-0000"].supervisions == []
    assert Path(read_kaldi_list(out / "all" / "wav.scp")["speech-us-gov-0000"]).is_file()
    assert not (out / "all" / "utt2spk").exists()
    assert "nothing to do" in prepare_musan(corpus, out)


def test_options_select_categories_and_drop_vocals(tmp_path: Path):
    corpus = make_musan(tmp_path / "musan")
    out = tmp_path / "out"
    prepare_musan(corpus, out, categories=("noise", "music"), use_vocals=False)
    ids = {c.id for c in load_cuts(out / "musan_cuts_all.jsonl.gz")}
    expected = set(_expected(("music", "noise"))) - {"music-fma-0001"}
    assert ids == expected
    # other options than the finished run: prepared again, not skipped
    assert "nothing to do" not in prepare_musan(corpus, out)
    assert len(load_cuts(out / "musan_cuts_all.jsonl.gz")) == len(_expected())


def test_relative_corpus_dir_gives_absolute_paths(tmp_path: Path, monkeypatch):
    make_musan(tmp_path / "musan")
    monkeypatch.chdir(tmp_path)
    summary = prepare_musan("musan", "out")
    manifest = tmp_path / "out" / "musan_cuts_all.jsonl.gz"
    assert f"data.musan_cuts={manifest}" in summary
    monkeypatch.chdir(tmp_path / "out")  # the manifest works from any working directory
    for cut in load_cuts(manifest):
        assert Path(cut.recording.sources[0].source).is_absolute()
        assert Path(cut.recording.sources[0].source).is_file()


def test_rerun_prepares_again_when_files_change(tmp_path: Path):
    corpus = make_musan(tmp_path / "musan")
    out = tmp_path / "out"
    prepare_musan(corpus, out)
    (corpus / "noise" / "free-sound" / "noise-free-sound-0001.wav").unlink()
    assert "nothing to do" not in prepare_musan(corpus, out)
    assert len(load_cuts(out / "musan_cuts_all.jsonl.gz")) == len(_expected()) - 1


def test_bad_layout_and_options(tmp_path: Path):
    corpus = make_musan(tmp_path / "musan")
    with pytest.raises(DataError, match="unknown MUSAN categories babble"):
        prepare_musan(corpus, tmp_path / "out", categories=("babble",))
    for wav in (corpus / "speech").rglob("*.wav"):
        wav.unlink()
    with pytest.raises(DataError, match=r"does not look like MUSAN: no wavs in .*speech"):
        prepare_musan(corpus, tmp_path / "out")
    prepare_musan(corpus, tmp_path / "out", categories=("noise",))
    bad = corpus / "noise" / "free-sound" / "noise-free-sound-0009.wav"
    bad.write_bytes(b"RIFF, but not audio")
    with pytest.raises(DataError, match="noise-free-sound-0009.wav.*replace or remove"):
        prepare_musan(corpus, tmp_path / "out", categories=("noise",))


def test_cli(tmp_path: Path):
    corpus = make_musan(tmp_path / "musan")
    base = ["--corpus-dir", str(corpus), "--out-dir", str(tmp_path / "o")]
    result = run_prepare("musan", *base, "--categories", "noise,speech", "--no-vocals")
    assert result.exit_code == 0, result.output
    assert "music" not in read_kaldi_list(tmp_path / "o" / "all" / "utt2category").values()
    result = run_prepare("musan", *base, "--categories", "noize")
    assert "valid: music, noise, speech" in one_error_line(result)
