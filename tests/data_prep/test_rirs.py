"""data_prep.rirs on a fake RIRS_NOISES tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_prep.rirs import prepare_rirs
from dino_speech.data.manifests import load_cuts, read_kaldi_list
from dino_speech.errors import DataError
from tests.data_prep.prepare_cli import one_error_line, run_prepare
from tests.fakes import make_rirs

SIMULATED = {
    f"{size}-{room}-{n:05d}": f"{size}-{room}"
    for size in ("smallroom", "mediumroom")
    for room in ("Room001", "Room002")
    for n in (1, 2)
}
REAL = {
    "air_type1_air_binaural_office_0_1": "air_type1_air_binaural_office",
    "RWCP_type2_rir_cirline_e2b_imp050": "RWCP_type2_rir_cirline_e2b",
}


def _prepare_sim_small_medium(corpus: Path, out: Path, **kwargs) -> str:
    return prepare_rirs(corpus, out, room_sizes=("small", "medium"), **kwargs)


def test_real_and_simulated_rirs_from_the_lists(tmp_path: Path):
    corpus = make_rirs(tmp_path / "RIRS_NOISES")
    out = tmp_path / "out"
    # the folder holding RIRS_NOISES works too
    summary = _prepare_sim_small_medium(tmp_path, out)
    assert "simulated" in summary and "rirs_cuts_all.jsonl.gz" in summary

    cuts = load_cuts(out / "rirs_cuts_all.jsonl.gz")
    assert {c.id: c.custom["room"] for c in cuts} == {**SIMULATED, **REAL}
    kinds = read_kaldi_list(out / "all" / "utt2category")
    assert kinds["air_type1_air_binaural_office_0_1"] == "real"  # no "rir" in its name
    assert kinds["smallroom-Room002-00001"] == "simulated"
    assert "RVB2014_type1_noise_largeroom1_1" not in kinds  # an isotropic noise, not an RIR
    assert cuts["mediumroom-Room001-00002"].custom["room_size"] == "medium"
    assert "room_size" not in cuts["air_type1_air_binaural_office_0_1"].custom
    stereo = cuts["RWCP_type2_rir_cirline_e2b_imp050"]
    assert stereo.recording.num_channels == 2 and stereo.channel == 0
    assert stereo.duration == pytest.approx(0.1)
    wav = Path(read_kaldi_list(out / "all" / "wav.scp")["smallroom-Room001-00001"])
    assert wav == (corpus / "simulated_rirs/smallroom/Room001/Room001-00001.wav").resolve()
    assert "nothing to do" in _prepare_sim_small_medium(tmp_path, out)


def test_simulated_without_lists_is_scanned_with_official_ids(tmp_path: Path):
    corpus = make_rirs(tmp_path / "RIRS_NOISES", sim_list=False)
    out = tmp_path / "out"
    _prepare_sim_small_medium(corpus, out, kinds=("simulated",), num_jobs=2)
    cuts = load_cuts(out / "rirs_cuts_all.jsonl.gz")
    assert {c.id: c.custom["room"] for c in cuts} == SIMULATED


def test_bad_layouts_and_options(tmp_path: Path):
    corpus = make_rirs(tmp_path / "RIRS_NOISES", real_list=False)
    with pytest.raises(DataError, match="largeroom is missing"):
        prepare_rirs(corpus, tmp_path / "out")
    with pytest.raises(DataError, match="rir_list is missing.*--kinds simulated"):
        _prepare_sim_small_medium(corpus, tmp_path / "out")
    with pytest.raises(DataError, match="unknown room sizes huge; valid: small, medium, large"):
        prepare_rirs(corpus, tmp_path / "out", room_sizes=("huge",))
    with pytest.raises(DataError, match="unknown RIR kinds measured"):
        prepare_rirs(corpus, tmp_path / "out", kinds=("measured",))
    listing = corpus / "simulated_rirs" / "smallroom" / "rir_list"
    listing.write_text("RIRS_NOISES/simulated_rirs/smallroom/Room001/Room001-00001.wav\n")
    with pytest.raises(DataError, match=r"rir_list:1: expected '--rir-id"):
        _prepare_sim_small_medium(corpus, tmp_path / "out", kinds=("simulated",))
    listing.write_text("--rir-id a --room-id r RIRS_NOISES/simulated_rirs/smallroom/gone.wav\n")
    with pytest.raises(DataError, match="1 RIR files named in the rir_list files do not exist"):
        _prepare_sim_small_medium(corpus, tmp_path / "out", kinds=("simulated",))


def test_cli(tmp_path: Path):
    corpus = make_rirs(tmp_path / "RIRS_NOISES")
    base = ["--corpus-dir", str(corpus), "--out-dir", str(tmp_path / "o")]
    result = run_prepare("rirs", *base, "--kinds", "real")
    assert result.exit_code == 0, result.output
    assert set(read_kaldi_list(tmp_path / "o" / "all" / "wav.scp")) == set(REAL)
    result = run_prepare("rirs", *base)  # largeroom is absent from the fake tree
    assert "largeroom" in one_error_line(result)
