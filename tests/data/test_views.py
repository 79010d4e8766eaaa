"""Views made in the loader workers (data.augment_on=workers): the same features whatever the
number of workers, exactly the same batches after a resume, the same augmentation as on the
device, and `auto` picking the workers on a CPU only."""

from __future__ import annotations

import pytest
import torch
from lhotse import CutSet, Recording

from dino_speech.audio import write_audio
from dino_speech.config import AugmentConfig, CropConfig, DataConfig
from dino_speech.data.views import CropViews, ViewMaker, resolve_augment_on
from dino_speech.errors import ConfigError
from dino_speech.train.crop_batches import CropBatchSource
from dino_speech.train.distributed import DistContext

SR = 16000


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> CutSet:
    root = tmp_path_factory.mktemp("views")
    g = torch.Generator().manual_seed(0)
    cuts = []
    for i in range(18):
        path = root / f"utt{i:02d}.wav"
        write_audio(path, 0.1 * torch.randn(int((0.4 + 0.05 * i) * SR), generator=g), SR)
        cuts.append(Recording.from_file(path, recording_id=f"utt{i:02d}").to_cut())
    return CutSet.from_cuts(cuts)


def _cfg(**kwargs: object) -> DataConfig:
    base: dict[str, object] = {
        "batch_size": 3,
        "num_workers": 0,
        "augment_on": "workers",
        "crops": CropConfig(num_global=2, global_seconds=0.3, num_local=2, local_seconds=0.2),
        "augment": AugmentConfig(
            noise_prob=0.6,
            reverb_prob=0.6,
            gain_prob=0.5,
            specaug_prob=0.5,
            synthetic_bank_size=4,
            bank_seconds=1.0,
            bank_refresh_every=2,  # the banks change within the test's epochs
            bank_refresh_size=2,
        ),
    }
    base.update(kwargs)
    return DataConfig(**base)  # type: ignore[arg-type]


def _source(cuts: CutSet, cfg: DataConfig, rank: int = 0, world: int = 1) -> CropBatchSource:
    ctx = DistContext(rank=rank, world_size=world, local_rank=rank, device=torch.device("cpu"))
    return CropBatchSource(cfg, seed=5, ctx=ctx, gen=torch.Generator().manual_seed(1), cuts=cuts)


def _flat(views: CropViews) -> list[torch.Tensor]:
    return [views.teacher[0], *(c[0] for c in views.student)]


def _epochs(source: CropBatchSource, epochs: range) -> list[list[torch.Tensor]]:
    out = []
    for epoch in epochs:
        source.set_epoch(epoch)
        for batch in source.batches():
            out.append(_flat(source.prepare(batch, torch.device("cpu"))))
    return out


def _assert_same(a: list[list[torch.Tensor]], b: list[list[torch.Tensor]]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for s, t in zip(x, y, strict=True):
            torch.testing.assert_close(s, t, rtol=0, atol=0)


@pytest.fixture
def one_thread():
    """Loader workers run torch on one thread; so does the in-process run it is compared
    with (more threads change the summation order of the FFTs in the last bits)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_features_do_not_depend_on_the_number_of_workers(corpus: CutSet, one_thread) -> None:
    in_process = _epochs(_source(corpus, _cfg(num_workers=0)), range(2))
    two_workers = _epochs(_source(corpus, _cfg(num_workers=2)), range(2))
    assert len(in_process) == 2 * (18 // 3)
    _assert_same(two_workers, in_process)
    # and they are augmented: differ between epochs and from the crops without augmentation
    assert not torch.equal(in_process[0][0], in_process[6][0])
    plain = _epochs(
        _source(corpus, _cfg(augment=AugmentConfig(noise_prob=0, reverb_prob=0))), range(1)
    )
    assert not torch.equal(plain[0][0], in_process[0][0])


def test_views_arrive_as_features(corpus: CutSet) -> None:
    source = _source(corpus, _cfg(num_workers=1))
    source.set_epoch(0)
    batch = next(iter(source.batches()))
    assert "global" not in batch and len(batch["cut_ids"]) == 3
    views = batch["views"]
    assert views.teacher[0].shape[:2] == (2 * 3, views.teacher[0].shape[1])
    assert views.teacher[0].shape[2] == source.cfg.features.num_mel_bins
    assert len(views.student) == 2 and views.student[1][0].shape[0] == 2 * 3


def test_a_resumed_epoch_makes_the_same_features(corpus: CutSet) -> None:
    cfg = _cfg(num_workers=2)
    straight = _epochs(_source(corpus, cfg), range(2))
    first = _source(corpus, cfg)
    first.set_epoch(1)
    it = iter(first.batches())
    for _ in range(2):
        next(it)
    state = first.state_dict(epoch=1, batches_trained=2)
    resumed = _source(corpus, cfg)
    resumed.load_state_dict(state)
    rest = _epochs(resumed, range(1, 2))
    _assert_same(rest, straight[6 + 2 :])


def test_ranks_draw_differently(corpus: CutSet) -> None:
    a = _epochs(_source(corpus, _cfg(), rank=0, world=2), range(1))
    b = _epochs(_source(corpus, _cfg(), rank=1, world=2), range(1))
    assert len(a) == len(b) == 3
    assert not torch.equal(a[0][0], b[0][0])


def test_worker_views_are_the_device_views_of_the_same_draws(corpus: CutSet, one_thread) -> None:
    """The worker path is the same ViewMaker: given its generator and call index, the
    training process computes the same features from the raw crops."""
    cfg = _cfg()
    source = _source(corpus, cfg)
    source.set_epoch(0)
    batch = next(iter(source.batches()))
    device_source = _source(corpus, _cfg(augment_on="device"))
    device_source.set_epoch(0)
    raw = next(iter(device_source.batches()))
    assert raw["cut_ids"] == batch["cut_ids"]
    from dino_speech.data.noise_bank import stable_seed

    maker = ViewMaker(cfg, seed=5, device=torch.device("cpu"))
    gen = torch.Generator().manual_seed(stable_seed(5, 0, "views", 0, 0))
    _assert_same([_flat(maker(raw, gen, call=0))], [_flat(batch["views"])])


def test_auto_uses_the_workers_on_a_cpu_only() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_augment_on("auto", cpu, 2) == "workers"
    assert resolve_augment_on("auto", cpu, 0) == "device"
    assert resolve_augment_on("auto", cuda, 4) == "device"
    assert resolve_augment_on("workers", cuda, 4) == "workers"
    with pytest.raises(ConfigError, match="augment_on"):
        resolve_augment_on("gpu", cpu, 2)
