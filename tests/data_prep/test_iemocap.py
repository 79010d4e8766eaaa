"""data_prep.iemocap on a fake IEMOCAP_full_release tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_prep.iemocap import parse_emo_evaluation, prepare_iemocap
from dino_speech.data.manifests import load_cuts, read_kaldi_list
from dino_speech.errors import DataError
from tests.data_prep.prepare_cli import one_error_line, run_prepare
from tests.fakes import IEMOCAP_UTTS, make_iemocap


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    return make_iemocap(tmp_path / "IEMOCAP_full_release")


def test_parts_labels_and_lists(corpus: Path, tmp_path: Path):
    out = tmp_path / "out"
    summary = prepare_iemocap(corpus, out)
    assert "all" in summary and "4class" in summary

    cuts = {c.id: c for c in load_cuts(out / "iemocap_cuts_all.jsonl.gz")}
    assert sorted(cuts) == sorted(f"{d}_{s}" for _, d, s, _, _ in IEMOCAP_UTTS)
    fru = cuts["Ses01F_impro01_M000"].custom
    # the speaker is the session plus the gender of the *speaking* actor, not of the dialog
    assert fru["speaker"] == "Ses01M" and fru["gender"] == "male"
    assert fru["session"] == "Ses01" and fru["emotion"] == "frustrated"
    assert fru["emotion_original"] == "fru" and "emotion_4class" not in fru
    assert (fru["valence"], fru["activation"], fru["dominance"]) == (2.0, 3.5, 3.5)
    assert fru["dialog"] == "Ses01F_impro01" and fru["method"] == "impro"
    exc = cuts["Ses01F_script01_1_F001"]
    assert exc.custom["emotion"] == "excited" and exc.custom["emotion_4class"] == "happy"
    assert exc.custom["method"] == "script" and exc.supervisions[0].speaker == "Ses01F"
    assert cuts["Ses02M_impro02_F004"].custom["emotion"] == "no_agreement"
    assert cuts["Ses01F_impro01_F000"].duration == pytest.approx(0.2)

    four = {c.id: c.custom["emotion"] for c in load_cuts(out / "iemocap_cuts_4class.jsonl.gz")}
    assert four == {
        "Ses01F_impro01_F000": "neutral",
        "Ses01F_script01_1_F001": "happy",
        "Ses02M_impro02_M003": "angry",
        "Ses03F_impro03_F000": "happy",
        "Ses04M_script02_2_M010": "sad",
    }
    assert read_kaldi_list(out / "4class" / "utt2emo") == four
    assert read_kaldi_list(out / "all" / "utt2sess")["Ses05F_impro04_M001"] == "Ses05"
    assert read_kaldi_list(out / "all" / "utt2spk")["Ses05F_impro04_M001"] == "Ses05M"
    wav_scp = read_kaldi_list(out / "all" / "wav.scp")
    assert Path(wav_scp["Ses01F_impro01_F000"]).is_absolute()
    assert "Ses01M" in read_kaldi_list(out / "all" / "spk2utt")


def test_rerun_does_nothing(corpus: Path, tmp_path: Path):
    out = tmp_path / "out"
    prepare_iemocap(corpus, out)
    manifest = out / "iemocap_cuts_all.jsonl.gz"
    before = manifest.stat().st_mtime_ns
    assert "nothing to do" in prepare_iemocap(corpus, out)
    assert manifest.stat().st_mtime_ns == before
    manifest.unlink()  # a missing output makes the rerun prepare again
    assert "nothing to do" not in prepare_iemocap(corpus, out)
    assert manifest.is_file()


def test_missing_wav_is_left_out_with_a_warning(corpus: Path, tmp_path: Path, caplog):
    wav = corpus / "Session3/sentences/wav/Ses03F_impro03/Ses03F_impro03_F000.wav"
    wav.unlink()
    prepare_iemocap(corpus, tmp_path / "out")
    ids = {c.id for c in load_cuts(tmp_path / "out" / "iemocap_cuts_all.jsonl.gz")}
    assert "Ses03F_impro03_F000" not in ids and len(ids) == len(IEMOCAP_UTTS) - 1
    assert "no wav" in caplog.text


def test_bad_layout_and_malformed_labels(corpus: Path, tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="Session1 ... Session5"):
        prepare_iemocap(empty, tmp_path / "x")
    with pytest.raises(DataError, match="is not a directory"):
        prepare_iemocap(tmp_path / "nowhere", tmp_path / "x")
    label_file = corpus / "Session2/dialog/EmoEvaluation/Ses02M_impro02.txt"
    text = label_file.read_text().replace("\tang\t", "\tang [oops\t", 1)
    label_file.write_text(text)
    with pytest.raises(DataError, match=r"Ses02M_impro02.txt:\d+: expected"):
        prepare_iemocap(corpus, tmp_path / "out2")
    label_file.write_text(text.replace("\tang [oops\t", "\tmad\t"))
    with pytest.raises(DataError, match="unknown IEMOCAP category 'mad'"):
        parse_emo_evaluation(label_file)


def test_cli(corpus: Path, tmp_path: Path):
    out = tmp_path / "out"
    result = run_prepare("iemocap", "--corpus-dir", str(corpus), "--out-dir", str(out))
    assert result.exit_code == 0, result.output
    assert (out / "iemocap_cuts_4class.jsonl.gz").is_file() and "4class" in result.output

    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_prepare("iemocap", "--corpus-dir", str(empty), "--out-dir", str(out))
    assert "Session1" in one_error_line(result)
