"""data_prep.msp_podcast on a fake MSP-Podcast tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_prep.msp_podcast import prepare_msp_podcast
from dino_speech.data.manifests import load_cuts, read_kaldi_list
from dino_speech.errors import DataError
from tests.data_prep.prepare_cli import one_error_line, run_prepare
from tests.fakes import make_msp_podcast


def test_official_splits_become_parts(tmp_path: Path):
    corpus = make_msp_podcast(tmp_path / "MSP-PODCAST")
    out = tmp_path / "out"
    summary = prepare_msp_podcast(corpus, out)
    assert summary.index("train") < summary.index("development") < summary.index("test1")

    parts = {
        part: {c.id: c for c in load_cuts(out / f"msp_podcast_cuts_{part}.jsonl.gz")}
        for part in ("train", "development", "test1", "test2")
    }
    assert sorted(parts["train"]) == [
        "MSP-PODCAST_0001_0008",
        "MSP-PODCAST_0001_0019",
        "MSP-PODCAST_0002_0033",
    ]
    assert list(parts["development"]) == ["MSP-PODCAST_0003_0001"]
    happy = parts["train"]["MSP-PODCAST_0001_0019"].custom
    assert happy["emotion"] == "happy" and happy["emotion_code"] == "H"
    assert (happy["activation"], happy["valence"], happy["dominance"]) == (5.0, 5.6, 4.8)
    assert happy["speaker"] == "127" and happy["gender"] == "female"
    unknown = parts["train"]["MSP-PODCAST_0002_0033"]
    assert unknown.custom["emotion"] == "no_agreement"
    assert "speaker" not in unknown.custom and "gender" not in unknown.custom
    assert unknown.supervisions[0].speaker is None
    assert parts["test1"]["MSP-PODCAST_0004_0002"].custom["emotion"] == "sad"
    assert parts["test2"]["MSP-PODCAST_0005_0003"].custom["emotion"] == "contempt"

    # utterances of unknown speakers have no utt2spk entry (they are not one speaker)
    assert read_kaldi_list(out / "train" / "utt2spk") == {
        "MSP-PODCAST_0001_0008": "127",
        "MSP-PODCAST_0001_0019": "127",
    }
    assert len(read_kaldi_list(out / "train" / "utt2emo")) == 3
    assert "nothing to do" in prepare_msp_podcast(corpus, out)


def test_old_label_file_name_and_missing_audio(tmp_path: Path, caplog):
    corpus = make_msp_podcast(tmp_path / "MSP", labels_name="labels_concensus.csv")
    (corpus / "Audios" / "MSP-PODCAST_0003_0001.wav").unlink()
    out = tmp_path / "out"
    prepare_msp_podcast(corpus, out)
    assert "left out" in caplog.text
    assert not (out / "msp_podcast_cuts_development.jsonl.gz").exists()
    assert len(load_cuts(out / "msp_podcast_cuts_train.jsonl.gz")) == 3


def test_bad_layout_and_labels(tmp_path: Path):
    with pytest.raises(DataError, match="Labels/labels_consensus.csv"):
        prepare_msp_podcast(tmp_path, tmp_path / "out")
    corpus = make_msp_podcast(tmp_path / "MSP")
    labels = corpus / "Labels" / "labels_consensus.csv"
    text = labels.read_text()
    labels.write_text(text.replace("Split_Set", "Partition"))
    with pytest.raises(DataError, match="missing column.*Split_Set"):
        prepare_msp_podcast(corpus, tmp_path / "out")
    labels.write_text(text.replace(",H,", ",Q,"))
    with pytest.raises(DataError, match=r"labels_consensus.csv:3: unknown EmoClass 'Q'"):
        prepare_msp_podcast(corpus, tmp_path / "out")
    labels.write_text(text.replace(",5.6,", ",high,"))
    with pytest.raises(DataError, match="EmoVal should be a number"):
        prepare_msp_podcast(corpus, tmp_path / "out")


def test_cli(tmp_path: Path):
    corpus = make_msp_podcast(tmp_path / "MSP")
    out = tmp_path / "out"
    result = run_prepare("msp_podcast", "--out-dir", str(out), "--corpus-dir", str(corpus))
    assert result.exit_code == 0, result.output
    assert (out / "test2" / "wav.scp").is_file()
    result = run_prepare("msp_podcast", "--out-dir", str(out), "--corpus-dir", str(out / "train"))
    assert "MSP-Podcast" in one_error_line(result)
