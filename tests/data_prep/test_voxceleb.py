"""data_prep.voxceleb on fake VoxCeleb1/VoxCeleb2 trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_prep.voxceleb import prepare_voxceleb, read_voxceleb_trials, utterance_id
from dino_speech.data.manifests import load_cuts, read_kaldi_list
from dino_speech.errors import DataError
from tests.data_prep.prepare_cli import one_error_line, run_prepare
from tests.fakes import (
    VOX1_DEV_SPEAKERS,
    VOX1_TEST_SPEAKERS,
    VOX2_DEV_SPEAKERS,
    VOX2_TEST_SPEAKERS,
    make_voxceleb1,
    make_voxceleb2,
    vox_id,
    vox_utts,
)


def _ids(speakers: tuple[str, ...]) -> list[str]:
    return sorted(vox_id(*u) for u in vox_utts(speakers))


def _kaldi_trials(path: Path) -> list[tuple[str, str, bool]]:
    rows = [line.split() for line in path.read_text().splitlines()]
    assert all(len(r) == 3 and r[2] in ("target", "nontarget") for r in rows)
    return [(a, b, t == "target") for a, b, t in rows]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    root = tmp_path_factory.mktemp("vox")
    make_voxceleb1(root / "voxceleb1")
    make_voxceleb2(root / "voxceleb2", audio="wav")
    out = root / "out"
    return root, out, prepare_voxceleb(out, corpus_dir=root)


def test_parts_and_labels(prepared):
    _, out, summary = prepared
    expected = {
        "vox1_dev": _ids(VOX1_DEV_SPEAKERS),
        "vox1_test": _ids(VOX1_TEST_SPEAKERS),
        "vox1": _ids(VOX1_DEV_SPEAKERS + VOX1_TEST_SPEAKERS),
        "vox2_dev": _ids(VOX2_DEV_SPEAKERS),
        "vox2_test": _ids(VOX2_TEST_SPEAKERS),
    }
    for part, ids in expected.items():
        assert part in summary
        cuts = load_cuts(out / f"voxceleb_cuts_{part}.jsonl.gz")
        assert sorted(c.id for c in cuts) == ids, part
        assert sorted(read_kaldi_list(out / part / "wav.scp")) == ids
    cut = load_cuts(out / "voxceleb_cuts_vox1_test.jsonl.gz")["id10271--8jEAjG6Se_-00002"]
    assert cut.custom["speaker"] == "id10271" and cut.custom["session"] == "-8jEAjG6Se_"
    assert cut.custom["gender"] == "female" and cut.custom["nationality"] == "USA"
    assert cut.custom["subset"] == "vox1_test" and cut.supervisions[0].speaker == "id10271"
    assert cut.recording.sources[0].source.endswith("voxceleb1/wav/id10271/-8jEAjG6Se_/00002.wav")
    utt2spk = read_kaldi_list(out / "vox2_dev" / "utt2spk")
    assert set(utt2spk.values()) == set(VOX2_DEV_SPEAKERS)
    sess = read_kaldi_list(out / "vox2_dev" / "utt2sess")
    assert sess["id00012-x6uYqmx31kE-00001"] == "x6uYqmx31kE"


def test_trials_are_converted_with_matching_ids(prepared):
    root, out, summary = prepared
    test_ids = {c.id for c in load_cuts(out / "voxceleb_cuts_vox1_test.jsonl.gz")}
    all_ids = {c.id for c in load_cuts(out / "voxceleb_cuts_vox1.jsonl.gz")}
    sources = {
        "vox1_o_orig": "veri_test.txt",
        "vox1_o_clean": "veri_test2.txt",
        "vox1_e_orig": "list_test_all.txt",
        "vox1_e_clean": "list_test_all2.txt",
        "vox1_h_orig": "list_test_hard.txt",
        "vox1_h_clean": "list_test_hard2.txt",
    }
    for name, source in sources.items():
        original = read_voxceleb_trials(root / "voxceleb1" / source)
        converted = _kaldi_trials(out / "vox1" / f"trials_{name}")
        assert converted == original and f"trials {name}" in summary
        assert {u for t in converted for u in t[:2]} <= all_ids
        # labels agree with the speakers (first field of the id)
        assert all(t == (a[:7] == b[:7]) for a, b, t in converted)
    o_clean = _kaldi_trials(out / "vox1_test" / "trials")
    assert o_clean == read_voxceleb_trials(root / "voxceleb1" / "veri_test2.txt")
    assert {u for t in o_clean for u in t[:2]} <= test_ids
    assert (out / "vox1_test" / "trials_vox1_o_orig").is_file()
    assert not (out / "vox1_test" / "trials_vox1_e_clean").exists()  # E names dev speakers
    first = (out / "vox1_test" / "trials_vox1_o_orig").read_text().splitlines()[0]
    assert first == "id10270-x6uYqmx31kE-00001 id10270-x6uYqmx31kE-00002 target"


def test_rerun_does_nothing_unless_inputs_change(tmp_path: Path):
    root = make_voxceleb1(tmp_path / "voxceleb1")
    hard = (root / "list_test_hard2.txt").read_text()
    (root / "list_test_hard2.txt").unlink()
    out = tmp_path / "out"
    prepare_voxceleb(out, vox1_dir=root)
    before = (out / "voxceleb_cuts_vox1.jsonl.gz").stat().st_mtime_ns
    assert "nothing to do" in prepare_voxceleb(out, vox1_dir=root)
    assert (out / "voxceleb_cuts_vox1.jsonl.gz").stat().st_mtime_ns == before
    assert not (out / "vox1" / "trials_vox1_h_clean").exists()
    (root / "list_test_hard2.txt").write_text(hard)  # a trial list added later is picked up
    assert "vox1_h_clean" in prepare_voxceleb(out, vox1_dir=root)
    assert (out / "vox1" / "trials_vox1_h_clean").is_file()


def test_without_meta_uses_official_test_speakers_and_folders(tmp_path: Path):
    make_voxceleb1(tmp_path / "v1", meta=False, trials=False)
    make_voxceleb2(tmp_path / "v2", audio="flac", meta=False)
    out = tmp_path / "out"
    summary = prepare_voxceleb(out, vox1_dir=tmp_path / "v1", vox2_dir=tmp_path / "v2")
    assert "no trial lists found" in summary
    test = load_cuts(out / "voxceleb_cuts_vox1_test.jsonl.gz")
    assert {c.custom["speaker"] for c in test} == set(VOX1_TEST_SPEAKERS)
    assert "gender" not in test[0].custom
    v2test = load_cuts(out / "voxceleb_cuts_vox2_test.jsonl.gz")
    assert {c.custom["speaker"] for c in v2test} == set(VOX2_TEST_SPEAKERS)
    assert v2test[0].recording.sources[0].source.endswith(".flac")


def test_missing_audio_drops_trials_with_a_count(tmp_path: Path, caplog):
    root = make_voxceleb1(tmp_path / "voxceleb1")
    (root / "wav" / "id10270" / "x6uYqmx31kE" / "00001.wav").unlink()
    out = tmp_path / "out"
    summary = prepare_voxceleb(out, vox1_dir=root)
    original = read_voxceleb_trials(root / "veri_test.txt")
    kept = [t for t in original if "id10270-x6uYqmx31kE-00001" not in t[:2]]
    assert _kaldi_trials(out / "vox1_test" / "trials_vox1_o_orig") == kept
    assert f"{len(original) - len(kept)} dropped" in summary and "dropped" in caplog.text


def test_only_test_half_skips_e_and_h(tmp_path: Path, caplog):
    root = make_voxceleb1(tmp_path / "voxceleb1")
    for spk in VOX1_DEV_SPEAKERS:
        for f in (root / "wav" / spk).rglob("*.wav"):
            f.unlink()
    out = tmp_path / "out"
    summary = prepare_voxceleb(out, vox1_dir=root)
    assert "vox1_e_clean" not in summary and "needs part vox1" in caplog.text
    assert (out / "vox1_test" / "trials").is_file()
    assert not (out / "voxceleb_cuts_vox1.jsonl.gz").exists()
    make_voxceleb1(root)  # the dev half extracted later: the rerun sees the new audio
    summary = prepare_voxceleb(out, vox1_dir=root)
    assert "nothing to do" not in summary and "vox1_e_clean" in summary
    assert len(load_cuts(out / "voxceleb_cuts_vox1.jsonl.gz")) == len(
        _ids(VOX1_DEV_SPEAKERS + VOX1_TEST_SPEAKERS)
    )


def test_aac_and_bad_layouts_give_clear_errors(tmp_path: Path):
    make_voxceleb2(tmp_path / "voxceleb2", audio="m4a")
    with pytest.raises(DataError, match=r"AAC \(12 \.m4a files\).*convert"):
        prepare_voxceleb(tmp_path / "out", corpus_dir=tmp_path)
    with pytest.raises(DataError, match="expected .*/voxceleb1"):
        prepare_voxceleb(tmp_path / "out", corpus_dir=tmp_path / "voxceleb2" / "dev" / "aac")
    (tmp_path / "v1" / "wav").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no VoxCeleb1 audio.*wav/idXXXXX/<video>/NNNNN.wav"):
        prepare_voxceleb(tmp_path / "out", vox1_dir=tmp_path / "v1")
    with pytest.raises(DataError, match="--vox1-dir"):
        prepare_voxceleb(tmp_path / "out")


def test_duplicate_and_malformed_inputs(tmp_path: Path):
    root = make_voxceleb1(tmp_path / "voxceleb1")
    with pytest.raises(DataError, match="utterance path"):
        utterance_id("x6uYqmx31kE/00001.wav")
    (root / "veri_test.txt").write_text("1 id10270/a/00001.wav\n")
    with pytest.raises(DataError, match=r"veri_test.txt:1: expected"):
        prepare_voxceleb(tmp_path / "out", vox1_dir=root)
    (root / "veri_test.txt").unlink()
    copy = root / "vox1_test_wav" / "wav" / "id10270" / "x6uYqmx31kE" / "00001.wav"
    copy.parent.mkdir(parents=True)
    copy.write_bytes((root / "wav" / "id10270" / "x6uYqmx31kE" / "00001.wav").read_bytes())
    with pytest.raises(DataError, match="same utterance id 'id10270-x6uYqmx31kE-00001'"):
        prepare_voxceleb(tmp_path / "out", vox1_dir=root)


def test_cli(tmp_path: Path):
    make_voxceleb1(tmp_path / "voxceleb1")
    out = tmp_path / "out"
    args = ["--corpus-dir", str(tmp_path), "--out-dir", str(out)]
    result = run_prepare("voxceleb", *args, "--num-jobs", "2")
    assert result.exit_code == 0, result.output
    assert "vox1_o_clean" in result.output and (out / "vox1" / "trials_vox1_h_orig").is_file()
    assert "--vox1-dir" in one_error_line(run_prepare("voxceleb", "--out-dir", str(out)))
    result = run_prepare("voxceleb", *args, "--trials-dir", str(tmp_path / "voxceleb1" / "wav"))
    assert "veri_test2.txt" in one_error_line(result)
