from __future__ import annotations

import numpy as np
import pytest
import torch
from lhotse import CutSet, Recording, RecordingSet

from dino_speech import Embedder
from dino_speech.audio import AudioError, AudioNotFoundError, read_audio, write_audio
from dino_speech.config import EncoderConfig, FbankConfig
from dino_speech.errors import ConfigError, DataError
from dino_speech.models.embedder_file import save_embedder
from dino_speech.models.registry import build_encoder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("exp")
    torch.manual_seed(0)
    encoder = build_encoder("ecapa_tiny")
    save_embedder(d / "embedder.pt", encoder, EncoderConfig("ecapa_tiny"), FbankConfig(), {})
    return d


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    d = tmp_path_factory.mktemp("wavs")
    rng = np.random.default_rng(0)
    paths = []
    for i, seconds in enumerate([1.3, 3.0, 0.6, 2.2, 4.1, 1.0, 2.7]):
        t = np.arange(int(16000 * seconds)) / 16000
        wave = 0.3 * np.sin(2 * np.pi * (120 + 30 * i) * t) + 0.05 * rng.normal(size=t.size)
        paths.append(d / f"utt{i}.wav")
        write_audio(paths[-1], wave, 16000)
    return paths


@pytest.fixture(scope="module")
def embedder(model_dir):
    return Embedder.from_pretrained(model_dir, device="cpu")


def test_from_pretrained_reads_exp_dir_and_file(model_dir, embedder):
    assert embedder.embed_dim == 128 and embedder.sample_rate == 16000
    again = Embedder.from_pretrained(model_dir / "embedder.pt")
    assert repr(again).startswith("Embedder(EcapaEncoder, dim=128")
    with pytest.raises(DataError, match="model not found"):
        Embedder.from_pretrained(model_dir / "missing")


def test_batched_equals_one_at_a_time_and_keeps_order(embedder, wavs):
    one = np.stack([embedder.embed_file(p) for p in wavs])
    assert one.shape == (len(wavs), 128) and one.dtype == np.float32
    batched = embedder.embed_files(wavs, batch_size=3, progress=False)
    np.testing.assert_allclose(batched, one, atol=1e-5)
    workers = embedder.embed_files(wavs[::-1], batch_size=4, num_workers=1, progress=False)
    np.testing.assert_allclose(workers, one[::-1], atol=1e-5)
    # different utterances give different embeddings (the test is not vacuous)
    assert np.abs(one[0] - one[1]).max() > 1e-3


def test_embed_array_channels_and_sample_rates(embedder, wavs, tmp_path):
    mono = read_audio(wavs[1], 16000).numpy()
    ref = embedder.embed_array(mono, 16000)
    np.testing.assert_allclose(ref, embedder.embed_file(wavs[1]), atol=1e-5)
    np.testing.assert_allclose(embedder.embed_array(np.stack([mono, mono]), 16000), ref, atol=1e-5)
    np.testing.assert_allclose(
        embedder.embed_array(np.stack([mono, mono], 1), 16000), ref, atol=1e-5
    )
    np.testing.assert_allclose(embedder.embed_array(torch.from_numpy(mono), 16000), ref, atol=1e-5)
    # an 8 kHz file and the same 8 kHz array go through the same resampling
    low = mono[::2].copy()
    write_audio(tmp_path / "low.wav", low, 8000)
    from_file = embedder.embed_file(tmp_path / "low.wav")
    from_array = embedder.embed_array(read_audio(tmp_path / "low.wav", None).numpy(), 8000)
    np.testing.assert_allclose(from_file, from_array, atol=1e-5)
    with pytest.raises(DataError, match="shape"):
        embedder.embed_array(np.zeros((2, 2, 100)), 16000)
    with pytest.raises(AudioError, match="shorter than the minimum"):
        embedder.embed_array(np.zeros(100), 16000)


def test_long_audio_is_windowed_and_averaged(model_dir):
    emb = Embedder.from_pretrained(model_dir, chunk_seconds=2.0, chunk_overlap=0.5)
    rng = np.random.default_rng(1)
    wave = torch.from_numpy(0.1 * rng.normal(size=int(16000 * 7.3)).astype(np.float32))
    segments = emb._segments(wave)
    size = 32000
    assert all(s.shape[0] == size for s in segments)
    starts = [int(s.data_ptr() - wave.data_ptr()) // 4 for s in segments]
    assert starts[0] == 0 and starts[-1] + size == wave.shape[0]
    assert all(b - a <= size - 8000 for a, b in zip(starts, starts[1:], strict=False))  # overlap
    want = np.mean([emb.embed_array(s.numpy(), 16000) for s in segments], axis=0)
    np.testing.assert_allclose(emb.embed_array(wave.numpy(), 16000), want, atol=1e-5)
    whole = Embedder.from_pretrained(model_dir, chunk_seconds=None)
    assert whole._segments(wave) == [wave]
    with pytest.raises(ConfigError, match="chunk_overlap"):
        Embedder.from_pretrained(model_dir, chunk_seconds=2.0, chunk_overlap=2.0)


def test_read_ahead_pool_is_bounded_by_audio_length(model_dir, wavs, monkeypatch):
    """Long recordings flush the length-bucketing pool early: memory stays bounded."""
    emb = Embedder.from_pretrained(model_dir, max_batch_seconds=1.0)
    want = np.stack([emb.embed_file(p) for p in wavs])
    pools: list[list[float]] = []
    embed_waves = emb._embed_waves

    def spy(waves, batch_size=16):
        pools.append([w.shape[0] / 16000 for w in waves])
        return embed_waves(waves, batch_size)

    monkeypatch.setattr(emb, "_embed_waves", spy)
    got = [v for _, v in emb.iter_embed([(str(p), p) for p in wavs], bucket_factor=2)]
    np.testing.assert_allclose(np.stack(got), want, atol=1e-5)
    # 2 x 1.0 s of audio at most before a flush (the wave that crosses the bound included)
    assert len(pools) > 2 and all(sum(p[:-1]) < 2.0 for p in pools), pools
    assert sum(len(p) for p in pools) == len(wavs)


@pytest.mark.slow
def test_ten_minute_file(embedder, tmp_path):
    rng = np.random.default_rng(2)
    write_audio(tmp_path / "long.wav", 0.1 * rng.normal(size=16000 * 600), 16000)
    vec = embedder.embed_file(tmp_path / "long.wav")
    assert vec.shape == (128,) and np.isfinite(vec).all()


def test_embed_cuts(embedder, wavs):
    recordings = RecordingSet.from_recordings(
        Recording.from_file(p, recording_id=f"rec{i}") for i, p in enumerate(wavs[:3])
    )
    cuts = CutSet.from_manifests(recordings=recordings)
    ids, X = embedder.embed_cuts(cuts, batch_size=2, progress=False)
    assert ids == [c.id for c in cuts] and len(ids) == 3
    np.testing.assert_allclose(X, embedder.embed_files(wavs[:3], progress=False), atol=1e-5)


def test_bad_audio_raises_or_is_skipped(embedder, wavs, tmp_path):
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really audio")
    items = [
        ("a", wavs[0]),
        ("bad", tmp_path / "broken.wav"),
        ("gone", tmp_path / "no.wav"),
        ("b", wavs[1]),
    ]
    with pytest.raises(AudioError, match="broken.wav"):
        embedder.embed_items(items, progress=False)
    with pytest.raises(AudioNotFoundError, match="no.wav"):
        embedder.embed_file(tmp_path / "no.wav")
    result = embedder.embed_items(items, progress=False, skip_bad=True, num_workers=1)
    assert result.ids == ["a", "b"]
    assert [u for u, _ in result.skipped] == ["bad", "gone"]
    assert "broken.wav" in result.skipped[0][1] and "not found" in result.skipped[1][1]
    np.testing.assert_allclose(result.vectors[1], embedder.embed_file(wavs[1]), atol=1e-5)


def test_score(embedder, wavs):
    a, b = embedder.embed_file(wavs[0]), embedder.embed_file(wavs[1])
    expected = a @ b / np.linalg.norm(a) / np.linalg.norm(b)
    assert embedder.score(a, b) == pytest.approx(expected, abs=1e-6)
    assert embedder.score(str(wavs[0]), wavs[0]) == pytest.approx(1.0, abs=1e-6)
    rows = embedder.score(np.stack([a, b]), np.stack([b, b]))
    np.testing.assert_allclose(rows, [expected, 1.0], atol=1e-6)


def test_pooled_layer(model_dir, embedder, wavs):
    pooled = Embedder.from_pretrained(model_dir, layer="pooled")
    assert pooled.embed_dim == 384 and "layer=pooled" in repr(pooled)
    stats = pooled.embed_files(wavs[:3], progress=False)
    assert stats.shape == (3, 384)
    # the model's last layer maps the pooled statistics to its embeddings
    fc = pooled.encoder.encoder.embedding_layer()
    with torch.no_grad():
        rebuilt = fc(torch.from_numpy(stats).unsqueeze(-1)).squeeze(-1).numpy()
    np.testing.assert_allclose(rebuilt, embedder.embed_files(wavs[:3], progress=False), atol=1e-4)
    with pytest.raises(ConfigError, match="not its 'pooled' layer"):
        pooled.stored_threshold()
