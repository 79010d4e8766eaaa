"""DINO loader and sampler: DDP split, reshuffling, exact resume, filtering, bad cuts."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from lhotse import AudioSource, CutSet, Recording

from dino_speech.audio import write_audio
from dino_speech.config import CropConfig, DataConfig
from dino_speech.data.sampling import CropSampler, make_crop_loader
from dino_speech.errors import DataError

SR = 16000
CROPS = CropConfig(num_global=2, global_seconds=0.3, num_local=2, local_seconds=0.1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> CutSet:
    root = tmp_path_factory.mktemp("sampling")
    g = torch.Generator().manual_seed(0)
    cuts = []
    for i in range(23):
        seconds = 0.2 + 0.05 * (i % 7)
        path = root / f"utt{i:02d}.wav"
        write_audio(path, 0.1 * torch.randn(int(seconds * SR), generator=g), SR)
        cuts.append(Recording.from_file(path, recording_id=f"utt{i:02d}").to_cut())
    return CutSet.from_cuts(cuts)


def _cfg(**kwargs: object) -> DataConfig:
    base = {"batch_size": 4, "num_workers": 0, "crops": CROPS}
    base.update(kwargs)
    return DataConfig(**base)  # type: ignore[arg-type]


def _ids(sampler: CropSampler) -> list[list[str]]:
    return [[c.id for c in batch] for batch in sampler]


@pytest.mark.parametrize("world_size", [1, 2, 3])
@pytest.mark.parametrize("drop_last", [True, False])
def test_ranks_split_the_data(corpus: CutSet, world_size: int, drop_last: bool) -> None:
    per_rank = []
    for rank in range(world_size):
        sampler = CropSampler(
            corpus, batch_size=4, seed=1, rank=rank, world_size=world_size, drop_last=drop_last
        )
        per_rank.append(_ids(sampler))
        assert len(per_rank[-1]) == len(sampler)
    assert len({len(batches) for batches in per_rank}) == 1  # same number of steps everywhere
    seen = [cut_id for batches in per_rank for batch in batches for cut_id in batch]
    if drop_last:
        assert len(seen) == len(set(seen))
        assert all(len(batch) == 4 for batches in per_rank for batch in batches)
    else:
        assert {s.split("_dup")[0] for s in seen} == set(corpus.ids)


def test_set_epoch_reshuffles(corpus: CutSet) -> None:
    sampler = CropSampler(corpus, batch_size=4, seed=0, drop_last=False)
    first = _ids(sampler)
    assert _ids(sampler) == first
    sampler.set_epoch(1)
    second = _ids(sampler)
    assert second != first
    assert sorted(sum(second, [])) == sorted(sum(first, [])) == sorted(corpus.ids)
    other_seed = CropSampler(corpus, batch_size=4, seed=5, drop_last=False)
    assert _ids(other_seed) != first


def _run(loader, limit: int | None = None) -> list[dict]:
    out = []
    for batch in loader:
        out.append(batch)
        if limit is not None and len(out) == limit:
            break
    return out


@pytest.mark.parametrize("workers", [0, 2])
def test_exact_resume(corpus: CutSet, workers: int) -> None:
    cfg = _cfg(num_workers=workers)
    loader, sampler = make_crop_loader(cfg, corpus, seed=7)
    sampler.set_epoch(2)
    full = _run(loader)
    assert len(full) == len(sampler) == 5

    loader, sampler = make_crop_loader(cfg, corpus, seed=7)
    sampler.set_epoch(2)
    _run(loader, limit=2)  # workers have prefetched more than this
    state = sampler.state_dict()
    assert state["epoch"] == 2 and state["batches_done"] == 2

    loader, sampler = make_crop_loader(cfg, corpus, seed=7)
    sampler.load_state_dict(state)
    sampler.set_epoch(2)  # the training loop calls it again for the restored epoch
    rest = _run(loader)
    assert [b["cut_ids"] for b in rest] == [b["cut_ids"] for b in full[2:]]
    for got, want in zip(rest, full[2:], strict=True):
        assert torch.equal(got["global"], want["global"])
        assert torch.equal(got["local"], want["local"])
    sampler.set_epoch(3)  # the next epoch starts from its beginning
    assert len(_run(loader)) == 5


def test_min_duration_and_errors(corpus: CutSet) -> None:
    loader, sampler = make_crop_loader(_cfg(min_duration=0.4), corpus, seed=0)
    kept = {cut_id for batch in loader for cut_id in batch["cut_ids"]}
    assert kept and all(corpus[c].duration >= 0.4 for c in kept)
    assert sampler.num_cuts == sum(c.duration >= 0.4 for c in corpus)
    with pytest.raises(DataError, match="shorter than"):
        make_crop_loader(_cfg(min_duration=10.0), corpus, seed=0)
    with pytest.raises(DataError, match="no full batch"):
        make_crop_loader(_cfg(batch_size=100), corpus, seed=0)


def _listed(path: Path, cut_id: str):
    """A cut whose manifest entry looks fine whatever the file holds (or if it is missing)."""
    source = AudioSource(type="file", channels=[0], source=str(path))
    return Recording(cut_id, [source], sampling_rate=SR, num_samples=SR, duration=1.0).to_cut()


def test_bad_cuts_are_skipped_counted_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_audio(tmp_path / "good.wav", 0.1 * torch.ones(SR), SR)
    (tmp_path / "garbage.wav").write_bytes(b"RIFF not really a wave file" * 10)
    names = ["good", "missing", "garbage", "missing2", "garbage2"]
    files = ["good", "missing", "garbage", "missing2", "garbage"]
    cuts = CutSet.from_cuts(
        _listed(tmp_path / f"{f}.wav", n) for n, f in zip(names, files, strict=True)
    )
    loader, sampler = make_crop_loader(_cfg(batch_size=2, drop_last=False), cuts, seed=0)
    with caplog.at_level(logging.WARNING, logger="dino_speech.data.sampling"):
        for epoch in range(2):
            sampler.set_epoch(epoch)
            batches = _run(loader)
            assert sum(b["num_skipped"] for b in batches) == 4
            assert [c for b in batches for c in b["cut_ids"]] == ["good"]
            for b in batches:  # an all-bad batch is empty, never an exception
                assert b["global"].shape[1] == len(b["cut_ids"])
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 4
    assert {m.split()[2].rstrip(":") for m in warned} == set(names[1:])


def test_manifest_path_and_train_cuts(tmp_path: Path, corpus: CutSet) -> None:
    path = tmp_path / "cuts.jsonl.gz"
    corpus.to_file(path)
    loader, sampler = make_crop_loader(_cfg(train_cuts=str(path)), seed=0)
    assert sampler.num_cuts == len(corpus)
    batch = next(iter(loader))
    assert batch["global"].shape == (2, 4, int(0.3 * SR))
    with pytest.raises(DataError, match="not found"):
        make_crop_loader(_cfg(train_cuts=str(tmp_path / "nope.jsonl.gz")), seed=0)
