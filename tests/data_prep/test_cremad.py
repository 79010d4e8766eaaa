"""data_prep.cremad on a fake CREMA-D tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_prep.cremad import prepare_cremad
from dino_speech.data.manifests import load_cuts, read_kaldi_list
from dino_speech.errors import DataError
from tests.data_prep.prepare_cli import one_error_line, run_prepare
from tests.fakes import CREMAD_FILES, make_cremad


def test_labels_from_file_names_and_demographics(tmp_path: Path):
    corpus = make_cremad(tmp_path / "CREMA-D")
    # the real release holds one empty file; it is skipped, not fatal
    (corpus / "AudioWAV" / "1076_MTI_SAD_XX.wav").write_bytes(b"")
    (corpus / "AudioWAV" / "README.wav").write_bytes(b"")
    out = tmp_path / "out"
    summary = prepare_cremad(corpus, out)
    assert "all" in summary

    cuts = {c.id: c for c in load_cuts(out / "cremad_cuts_all.jsonl.gz")}
    assert sorted(cuts) == sorted(CREMAD_FILES)
    cut = cuts["1001_DFA_ANG_XX"]
    assert cut.custom["speaker"] == "1001" and cut.custom["emotion"] == "angry"
    assert cut.custom["sentence"] == "DFA" and cut.custom["level"] == "unspecified"
    assert cut.custom["gender"] == "male" and cut.custom["age"] == 51
    assert cut.custom["ethnicity"] == "Not Hispanic"
    assert cut.supervisions[0].text == "Don't forget a jacket"
    assert cut.supervisions[0].speaker == "1001" and cut.supervisions[0].gender == "male"
    assert cuts["1091_WSI_FEA_MD"].custom["level"] == "medium"
    assert cuts["1091_WSI_FEA_MD"].custom["race"] == "Asian"

    emo = read_kaldi_list(out / "all" / "utt2emo")
    assert emo == {
        "1001_DFA_ANG_XX": "angry",
        "1001_IEO_HAP_HI": "happy",
        "1002_TIE_SAD_LO": "sad",
        "1002_IOM_NEU_XX": "neutral",
        "1091_WSI_FEA_MD": "fearful",
        "1091_ITS_DIS_XX": "disgusted",
    }
    assert read_kaldi_list(out / "all" / "spk2utt")["1002"] == "1002_IOM_NEU_XX 1002_TIE_SAD_LO"
    assert not (out / "all" / "utt2sess").exists()


def test_without_demographics_and_rerun(tmp_path: Path):
    corpus = make_cremad(tmp_path / "CREMA-D", demographics=False)
    out = tmp_path / "out"
    prepare_cremad(corpus, out)
    cut = load_cuts(out / "cremad_cuts_all.jsonl.gz")[0]
    assert "gender" not in cut.custom and "age" not in cut.custom
    assert "nothing to do" in prepare_cremad(corpus, out)


def test_bad_layouts(tmp_path: Path):
    with pytest.raises(DataError, match="AudioWAV"):
        prepare_cremad(tmp_path, tmp_path / "out")
    (tmp_path / "AudioWAV").mkdir()
    (tmp_path / "AudioWAV" / "clip1.wav").write_bytes(b"x")
    with pytest.raises(DataError, match="1001_DFA_ANG_XX.wav"):
        prepare_cremad(tmp_path, tmp_path / "out")
    (tmp_path / "AudioWAV" / "1001_DFA_ANG_XX.wav").write_text("version https://git-lfs...\n")
    with pytest.raises(DataError, match="git lfs pull"):
        prepare_cremad(tmp_path, tmp_path / "out")
    corpus = make_cremad(tmp_path / "c2")
    (corpus / "VideoDemographics.csv").write_text("Actor,Age\n1001,3\n")
    with pytest.raises(DataError, match="ActorID"):
        prepare_cremad(corpus, tmp_path / "out")


def test_cli(tmp_path: Path):
    corpus = make_cremad(tmp_path / "CREMA-D")
    out = tmp_path / "out"
    result = run_prepare("cremad", "--corpus-dir", str(corpus), "--out-dir", str(out))
    assert result.exit_code == 0, result.output
    assert (out / "all" / "utt2emo").is_file()
    result = run_prepare("cremad", "--corpus-dir", str(tmp_path / "no"), "--out-dir", str(out))
    assert "does not exist" in one_error_line(result)
