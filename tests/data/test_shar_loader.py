"""The DINO loader over Shar shards: coverage, rank/worker split, one length, exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lhotse import CutSet

import dino_speech.data.shar_loader as shar_loader
from dino_speech.config import CropConfig, DataConfig
from dino_speech.data.shar import write_shar
from dino_speech.data.shar_loader import make_shar_loader, train_source
from dino_speech.errors import ConfigError, DataError
from tests.data.test_shar import make_cuts

CROPS = CropConfig(num_global=2, global_seconds=0.3, num_local=1, local_seconds=0.1)


@pytest.fixture(scope="module")
def cuts(tmp_path_factory: pytest.TempPathFactory) -> CutSet:
    return make_cuts(tmp_path_factory.mktemp("loader_audio"), n=23)


@pytest.fixture(scope="module")
def shar_dir(cuts: CutSet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("loader_shar") / "shar"
    write_shar(cuts, out, shard_size=3, progress=False)  # 7 shards of 3 and one of 2
    return out


def _cfg(shar_dir: Path, **kwargs: object) -> DataConfig:
    base = {
        "train_shar": str(shar_dir),
        "batch_size": 2,
        "num_workers": 0,
        "crops": CROPS,
        "shar_shuffle_buffer": 2,
    }
    base.update(kwargs)
    return DataConfig(**base)  # type: ignore[arg-type]


def _epoch(cfg: DataConfig, epoch: int, *, rank: int = 0, world_size: int = 1, state=None):
    loader, plan = make_shar_loader(cfg, seed=3, rank=rank, world_size=world_size)
    if state is not None:
        plan.load_state_dict(state)
    plan.set_epoch(epoch)
    return list(loader), plan


def test_one_epoch_reads_every_cut_once(shar_dir: Path, cuts: CutSet) -> None:
    batches, plan = _epoch(_cfg(shar_dir, drop_last=False), 0)
    ids = [i for b in batches for i in b["cut_ids"]]
    assert sorted(ids) == sorted(cuts.ids) and len(batches) == len(plan) == 12
    assert batches[0]["global"].shape == (2, 2, int(0.3 * 16000))
    again, _ = _epoch(_cfg(shar_dir, drop_last=False), 1)
    assert [b["cut_ids"] for b in again] != [b["cut_ids"] for b in batches]  # reshuffled


@pytest.mark.parametrize("workers", [0, 2])
def test_ranks_read_disjoint_cuts_and_take_as_many_steps(shar_dir: Path, workers: int) -> None:
    cfg = _cfg(shar_dir, num_workers=workers, min_duration=0.25)
    for epoch in range(3):
        seen = []
        lengths = set()
        for rank in range(2):
            batches, plan = _epoch(cfg, epoch, rank=rank, world_size=2)
            assert len(batches) == len(plan)  # the bound holds in every epoch, on every rank
            lengths.add(len(plan))
            seen.append({i for b in batches for i in b["cut_ids"]})
        assert lengths == {len(plan)} and len(plan) > 0
        assert not seen[0] & seen[1]


def test_workers_batches_come_in_plan_order(shar_dir: Path) -> None:
    # Two workers: batch i is the plan's i-th, whichever worker finishes first.
    cfg = _cfg(shar_dir, num_workers=2)
    batches, plan = _epoch(cfg, 0)
    schedule = plan.schedule(0)
    streams = plan.streams(0)
    shard_of = {}
    for k, stream in enumerate(streams):
        for shard in stream:
            for cut in shar_loader.read_shard(shard):
                shard_of[cut.id] = k
    assert [shard_of[b["cut_ids"][0]] for b in batches] == schedule
    assert schedule[:6] == [0, 1, 0, 1, 0, 1] and len(schedule) == len(plan)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_resumed_epoch_continues_with_the_same_batches(
    shar_dir: Path, workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _cfg(shar_dir, num_workers=workers)
    straight, plan = _epoch(cfg, 1)
    state = {**plan.state_dict(), "batches_done": 5}
    opened: list[str] = []
    original = shar_loader.read_shard

    def counting(shard):  # workers=0: the main process reads, the count is seen here
        opened.append(shard.name)
        return original(shard)

    monkeypatch.setattr(shar_loader, "read_shard", counting)
    resumed, _ = _epoch(cfg, 1, state=state)
    assert len(resumed) == len(straight) - 5
    for a, b in zip(resumed, straight[5:], strict=True):
        assert a["cut_ids"] == b["cut_ids"]
        torch.testing.assert_close(a["global"], b["global"])
        torch.testing.assert_close(a["local"], b["local"])
    if workers == 0:
        # 5 batches of 2 = 10 cuts: the first 3 shards (9 cuts) are finished, not reopened.
        order = [s.name for s in plan.streams(1)[0]]
        assert opened == order[3:]


def test_the_loader_position_is_saved_and_restored(shar_dir: Path) -> None:
    loader, plan = make_shar_loader(_cfg(shar_dir), seed=3)
    plan.set_epoch(2)
    for i, _ in enumerate(loader):
        if i == 2:
            break
    assert plan.state_dict()["batches_done"] == 3 and plan.state_dict()["epoch"] == 2
    other, plan2 = make_shar_loader(_cfg(shar_dir, num_workers=2), seed=3)
    with pytest.warns(UserWarning, match="num_streams"):
        plan2.load_state_dict(plan.state_dict())
    plan2.set_epoch(2)  # the restored epoch keeps its position
    assert plan2.batches_done == 3


def test_bad_settings_are_one_line_errors(shar_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not both"):
        train_source(_cfg(shar_dir, train_cuts="cuts.jsonl.gz"))
    with pytest.raises(ConfigError, match="train_shar"):
        train_source(DataConfig())
    assert train_source(_cfg(shar_dir)) == "shar"
    with pytest.raises(DataError, match="make no full batch"):
        make_shar_loader(_cfg(shar_dir, batch_size=40), seed=0)
    with pytest.raises(DataError, match="not found"):
        make_shar_loader(_cfg(tmp_path / "none"), seed=0)


def test_a_damaged_shard_is_named(cuts: CutSet, tmp_path: Path) -> None:
    shar = tmp_path / "shar"
    write_shar(cuts, shar, shard_size=12, progress=False)
    tar = shar / "recording.000001.tar"
    tar.write_bytes(tar.read_bytes()[:5000])  # cut off mid-way
    loader, plan = make_shar_loader(_cfg(shar), seed=0)
    with pytest.raises(DataError, match=r"recording\.000001\.tar: unreadable"):
        list(loader)
