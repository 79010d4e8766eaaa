"""Lhotse Shar shards: writing keeps the audio and labels; shard order and rank/worker split."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from lhotse import AudioSource, CutSet, Recording

from dino_speech.audio import read_cut, write_audio
from dino_speech.cli.main import cli
from dino_speech.data.shar import (
    epoch_shard_order,
    list_shards,
    read_shard,
    split_shards,
    write_shar,
)
from dino_speech.errors import DataError

SR = 16000


def make_cuts(root: Path, n: int = 11) -> CutSet:
    """``n`` short random utterances with speaker/session/pseudo labels in ``custom``."""
    g = torch.Generator().manual_seed(0)
    cuts = []
    for i in range(n):
        path = root / f"u{i:02d}.wav"
        write_audio(path, 0.1 * torch.randn(int((0.2 + 0.03 * i) * SR), generator=g), SR)
        cut = Recording.from_file(path, recording_id=f"u{i:02d}").to_cut()
        cut = cut.with_custom("speaker", f"s{i % 3}").with_custom("session", f"x{i % 2}")
        cuts.append(cut.with_custom("pseudo_speaker", i % 4))
    return CutSet.from_cuts(cuts)


@pytest.fixture(scope="module")
def cuts(tmp_path_factory: pytest.TempPathFactory) -> CutSet:
    return make_cuts(tmp_path_factory.mktemp("shar_audio"))


def test_shards_keep_the_audio_and_the_labels(cuts: CutSet, tmp_path: Path) -> None:
    shards = write_shar(cuts, tmp_path / "shar", shard_size=4, progress=False)
    assert [s.name for s in shards] == ["000000", "000001", "000002"]
    assert [len(s.durations) for s in shards] == [4, 4, 3]
    assert list_shards(tmp_path / "shar") == shards
    read = [c for s in shards for c in read_shard(s)]
    assert sorted(c.id for c in read) == sorted(cuts.ids)
    assert [c.id for c in read] != sorted(cuts.ids)  # shuffled before packing
    for cut in read:
        original = cuts[cut.id]
        assert cut.recording.sources[0].type == "memory"  # not the file any more
        for key in ("speaker", "session", "pseudo_speaker"):
            assert cut.custom[key] == original.custom[key]
        torch.testing.assert_close(read_cut(cut, SR), read_cut(original, SR), atol=1e-4, rtol=0)
    # Lhotse's own reader sees the same cuts.
    assert sorted(CutSet.from_shar(in_dir=tmp_path / "shar").ids) == sorted(cuts.ids)


def test_a_cut_segment_is_packed_alone(cuts: CutSet, tmp_path: Path) -> None:
    whole = cuts["u10"]
    part = whole.truncate(offset=0.1, duration=0.2).with_id("u10-part")
    (shard,) = write_shar(CutSet.from_cuts([part]), tmp_path / "shar", progress=False)
    (read,) = read_shard(shard)
    assert read.start == 0 and read.duration == pytest.approx(0.2)
    torch.testing.assert_close(read_cut(read, SR), read_cut(part, SR), atol=1e-4, rtol=0)


def test_bad_inputs_are_one_line_errors(cuts: CutSet, tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(DataError, match="not empty"):
        write_shar(cuts, tmp_path / "full", progress=False)
    missing = Recording(
        "gone", [AudioSource("file", [0], str(tmp_path / "gone.wav"))], SR, SR, 1.0
    ).to_cut()
    with pytest.raises(DataError, match="cut 'gone': cannot read its audio"):
        write_shar(CutSet.from_cuts([missing]), tmp_path / "new", progress=False)
    assert not (tmp_path / "new").exists()  # nothing half-written left behind
    with pytest.raises(DataError, match="no Lhotse Shar shards"):
        list_shards(tmp_path / "full")
    with pytest.raises(DataError, match="not found"):
        list_shards(tmp_path / "nowhere")


def test_ranks_and_workers_get_disjoint_shards_covering_all(cuts: CutSet, tmp_path: Path) -> None:
    shards = write_shar(cuts, tmp_path / "shar", shard_size=1, progress=False)
    for epoch in range(3):
        order = epoch_shard_order(shards, seed=5, epoch=epoch)
        parts = [
            split_shards(order, rank, 2, worker, 3) for rank in range(2) for worker in range(3)
        ]
        names = [s.name for part in parts for s in part]
        assert sorted(names) == [s.name for s in shards]  # each shard exactly once
        assert all(parts)
    # Reshuffled every epoch, the same on every rank (from the seed only).
    assert epoch_shard_order(shards, 5, 0) != epoch_shard_order(shards, 5, 1)
    assert epoch_shard_order(shards, 5, 1) == epoch_shard_order(shards, 5, 1)
    # The order Lhotse's own from_shar(shuffle_shards=True) reads in its first epoch.
    lhotse_ids = [
        c.id for c in CutSet.from_shar(in_dir=tmp_path / "shar", shuffle_shards=True, seed=5)
    ]
    assert lhotse_ids == [c.id for s in epoch_shard_order(shards, 5, 0) for c in read_shard(s)]


def test_the_shar_command(cuts: CutSet, tmp_path: Path) -> None:
    manifest = tmp_path / "cuts.jsonl.gz"
    cuts.to_file(manifest)
    args = ["shar", "--cuts", str(manifest), "--out-dir", str(tmp_path / "d"), "--no-progress"]
    result = CliRunner().invoke(cli, [*args, "--shard-size", "5", "--audio-format", "wav"])
    assert result.exit_code == 0, result.output
    assert "wrote 11 cuts in 3 shards" in result.output
    assert len(list((tmp_path / "d").glob("recording.*.tar"))) == 3
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 2 and "not empty" in again.output
