"""Tests for dino_speech.data.manifests: loading, labels, Kaldi lists, manifest writing."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet

from dino_speech.audio import write_audio
from dino_speech.data.manifests import (
    attach_labels,
    cut_label,
    filter_min_duration,
    load_cuts,
    manifest_path,
    read_kaldi_list,
    write_kaldi_lists,
    write_manifests,
)
from dino_speech.errors import DataError


def _make_manifests(tmp_path: Path, durations: dict[str, float]):
    rng = np.random.default_rng(0)
    recordings = []
    for utt, seconds in durations.items():
        wav = tmp_path / "wavs" / f"{utt}.wav"
        write_audio(wav, 0.1 * rng.standard_normal(int(16000 * seconds)), 16000)
        recordings.append(Recording.from_file(wav, recording_id=utt))
    recs = RecordingSet.from_recordings(recordings)
    sups = SupervisionSet.from_segments(
        SupervisionSegment(
            id=r.id, recording_id=r.id, start=0.0, duration=r.duration, speaker=r.id.split("-")[0]
        )
        for r in recs
    )
    cuts = CutSet.from_manifests(recordings=recs, supervisions=sups).to_eager()
    # from_manifests gives random cut ids; the toolkit keys everything by recording id.
    cuts = CutSet.from_cuts(c.with_id(c.recording_id) for c in cuts)
    return recs, sups, cuts


@pytest.fixture()
def manifests(tmp_path: Path):
    return _make_manifests(tmp_path, {"spkB-0001": 0.5, "spkA-0002": 1.0, "spkA-0001": 0.25})


def test_write_and_load_manifests_round_trip(tmp_path: Path, manifests) -> None:
    recs, sups, cuts = manifests
    cuts = attach_labels(cuts, "emotion", {"spkA-0001": "happy"})
    paths = write_manifests(tmp_path / "out", "toy", "train", recs, sups, cuts)
    assert paths["cuts"] == tmp_path / "out" / "toy_cuts_train.jsonl.gz"
    assert paths["recordings"].name == "toy_recordings_train.jsonl.gz"
    assert paths["supervisions"].name == "toy_supervisions_train.jsonl.gz"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        p.name for p in paths.values()
    )
    loaded = load_cuts(paths["cuts"])
    assert sorted(c.id for c in loaded) == ["spkA-0001", "spkA-0002", "spkB-0001"]
    assert cut_label(loaded["spkA-0001"], "emotion") == "happy"
    assert cut_label(loaded["spkA-0002"], "emotion") is None
    assert len(RecordingSet.from_file(paths["recordings"])) == 3
    with pytest.raises(DataError, match="holds a RecordingSet, not a cut manifest"):
        load_cuts(paths["recordings"])
    assert manifest_path(tmp_path, "x", "cuts", "test") == tmp_path / "x_cuts_test.jsonl.gz"
    with pytest.raises(ValueError, match="unknown manifest kind"):
        manifest_path(tmp_path, "x", "features", "test")


def test_load_cuts_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cut manifest not found"):
        load_cuts(tmp_path / "nope.jsonl.gz")
    (tmp_path / "c_cuts_train.jsonl.gz").touch()
    with pytest.raises(DataError, match="it is a directory; cut manifests in it: c_cuts_train"):
        load_cuts(tmp_path)
    bad = tmp_path / "bad.jsonl.gz"
    with gzip.open(bad, "wt") as f:
        f.write('{"id": "x", "this is": "not a cut"}\n')
    with pytest.raises(DataError, match="not a valid Lhotse cut manifest"):
        load_cuts(bad)
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("not json at all\n")
    with pytest.raises(DataError, match="garbage.jsonl: not a valid"):
        load_cuts(garbage)
    empty = tmp_path / "empty.jsonl.gz"
    with gzip.open(empty, "wt") as f:
        f.write("")
    with pytest.raises(DataError, match="no cuts"):
        load_cuts(empty)


def test_cut_label_speaker_falls_back_to_supervision(manifests) -> None:
    _, _, cuts = manifests
    cut = cuts["spkB-0001"]
    assert cut_label(cut, "speaker") == "spkB"
    assert cut_label(cut, "session") is None
    relabelled = cut.with_custom("speaker", "other")
    assert cut_label(relabelled, "speaker") == "other"
    assert cut_label(cut.with_custom("pseudo_speaker", 7), "pseudo_speaker") == "7"


def test_attach_labels_is_eager_and_does_not_mutate(manifests) -> None:
    _, _, cuts = manifests
    out = attach_labels(cuts, "pseudo_speaker", {"spkA-0001": 3, "spkB-0001": 0})
    assert out["spkA-0001"].custom["pseudo_speaker"] == 3
    assert out["spkB-0001"].custom["pseudo_speaker"] == 0
    assert not out["spkA-0002"].has_custom("pseudo_speaker")
    assert all(not c.has_custom("pseudo_speaker") for c in cuts)
    assert len(out) == 3
    with pytest.raises(DataError, match="1 of 2 'emotion' labels name cuts that are not in"):
        attach_labels(cuts, "emotion", {"spkA-0001": "sad", "ghost-0001": "sad"})
    with pytest.raises(DataError, match="2 of 3 cuts have no 'emotion' label"):
        attach_labels(cuts, "emotion", {"spkA-0001": "sad"}, require_all=True)


def test_filter_min_duration(manifests) -> None:
    _, _, cuts = manifests
    kept = filter_min_duration(cuts, 0.5)
    assert sorted(c.id for c in kept) == ["spkA-0002", "spkB-0001"]
    assert len(filter_min_duration(cuts, 10.0)) == 0


def test_write_kaldi_lists(tmp_path: Path, manifests) -> None:
    _, _, cuts = manifests
    cuts = attach_labels(cuts, "emotion", {c.id: "neutral" for c in cuts})
    cuts = attach_labels(cuts, "session", {"spkA-0001": "spkA-s1"})
    written = write_kaldi_lists(cuts, tmp_path / "lists")
    assert set(written) == {"wav.scp", "utt2spk", "spk2utt", "utt2emo", "utt2sess"}
    lines = (tmp_path / "lists" / "utt2spk").read_text().splitlines()
    assert lines == ["spkA-0001 spkA", "spkA-0002 spkA", "spkB-0001 spkB"]
    assert read_kaldi_list(written["spk2utt"]) == {
        "spkA": "spkA-0001 spkA-0002",
        "spkB": "spkB-0001",
    }
    assert read_kaldi_list(written["utt2sess"]) == {"spkA-0001": "spkA-s1"}
    wav_scp = read_kaldi_list(written["wav.scp"])
    assert list(wav_scp) == ["spkA-0001", "spkA-0002", "spkB-0001"]
    for utt, path in wav_scp.items():
        assert Path(path).is_absolute() and Path(path).name == f"{utt}.wav"
    assert not (tmp_path / "lists" / "segments").exists()

    only_spk = write_kaldi_lists(cuts, tmp_path / "spk", keys=("speaker",))
    assert set(only_spk) == {"wav.scp", "utt2spk", "spk2utt"}


def test_write_kaldi_lists_sub_segments_write_segments_file(tmp_path: Path, manifests) -> None:
    _, _, cuts = manifests
    long = cuts["spkA-0002"]
    parts = CutSet.from_cuts(
        [
            long.truncate(offset=0.0, duration=0.5).with_id("spkA-0002-a"),
            long.truncate(offset=0.5, duration=0.5).with_id("spkA-0002-b"),
        ]
    )
    written = write_kaldi_lists(parts, tmp_path, keys=())
    assert list(read_kaldi_list(written["wav.scp"])) == ["spkA-0002"]
    assert read_kaldi_list(written["segments"]) == {
        "spkA-0002-a": "spkA-0002 0.000 0.500",
        "spkA-0002-b": "spkA-0002 0.500 1.000",
    }


def test_write_kaldi_lists_rejects_bad_input(tmp_path: Path, manifests) -> None:
    _, _, cuts = manifests
    with pytest.raises(DataError, match="no cuts"):
        write_kaldi_lists(CutSet.from_cuts([]), tmp_path)
    spaced = attach_labels(cuts, "emotion", {"spkA-0001": "very happy"})
    with pytest.raises(DataError, match="contains whitespace"):
        write_kaldi_lists(spaced, tmp_path)


def test_read_kaldi_list_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="Kaldi list not found"):
        read_kaldi_list(tmp_path / "utt2spk")
    good = tmp_path / "wav.scp"
    good.write_text("u1 /a/b.wav\n\nu2   sox x.wav -t wav - |\n")
    assert read_kaldi_list(good) == {"u1": "/a/b.wav", "u2": "sox x.wav -t wav - |"}
    bad = tmp_path / "utt2spk"
    bad.write_text("u1 s1\nu2\n")
    with pytest.raises(DataError, match=r"utt2spk:2: expected 'KEY VALUE', got 'u2'"):
        read_kaldi_list(bad)
    dup = tmp_path / "utt2emo"
    dup.write_text("u1 happy\nu1 sad\n")
    with pytest.raises(DataError, match=r"utt2emo:2: duplicate key 'u1'"):
        read_kaldi_list(dup)
