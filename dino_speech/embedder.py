"""The Python API: load a trained model and embed audio files, arrays or Lhotse cuts.

    from dino_speech import Embedder

    emb = Embedder.from_pretrained("exp/dino_ecapa", device="cuda")
    a = emb.embed_file("a.wav")                          # (D,) float32
    X = emb.embed_files(paths, batch_size=32, num_workers=4)   # (N, D), input order
    emb.score(a, emb.embed_file("b.wav"))                # cosine similarity
    emb.verify("a.wav", "b.wav")    # Verification(score, threshold, same); threshold.json

Audio of any sample rate and channel count is read by :mod:`dino_speech.audio` (channels
averaged, resampled to the model's rate). Utterances longer than ``chunk_seconds`` are cut into
windows of ``chunk_seconds`` that overlap by at least ``chunk_overlap`` seconds (the last window
is aligned with the end, so all windows have the same length); the embedding is the mean of the
window embeddings. Memory therefore stays bounded for hour-long files.

Batches are length-bucketed: a pool of ``batch_size * bucket_factor`` utterances (and at most
``bucket_factor * max_batch_seconds`` of audio, so a list of long recordings never fills memory)
is read by ``num_workers`` DataLoader workers, its segments sorted by length and cut into batches
of at most ``batch_size`` segments and ``max_batch_seconds`` of padded audio. Encoders mask padded
frames, so a batched utterance gets the embedding it gets alone.

On a CPU, large batches are slower per utterance, not faster: ECAPA-TDNN's activations for 16
utterances of 6 s (about 40 MB per layer) no longer fit in the cache, and the element-wise layers
become memory-bound (measured in ``bench/embed.py``: batch 16 is about twice as slow per file as
batch 1). The CPU default of ``max_batch_seconds`` is therefore 20 s of padded audio per batch,
against 480 s on an accelerator.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from dino_speech.audio import AudioError, read_audio, read_cut, resample, validate_waveform
from dino_speech.audio_checks import warn_if_silent, warn_silent_items
from dino_speech.config import FbankConfig
from dino_speech.data.features import build_fbank
from dino_speech.errors import ConfigError, DataError
from dino_speech.models.pooled import cut_at_layer
from dino_speech.runtime import bf16_autocast

__all__ = ["EmbedResult", "Embedder", "Verification"]

logger = logging.getLogger(__name__)

_CPU_BATCH_SECONDS = 20.0


@dataclass
class EmbedResult:
    """Embeddings of a list of utterances: ``ids`` and ``vectors (N, D)``, plus what failed."""

    ids: list[str]
    vectors: np.ndarray
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (id, reason)


@dataclass(frozen=True)
class Verification:
    """One trial: cosine ``score``, the ``threshold`` used, and ``same = score >= threshold``."""

    score: float
    threshold: float
    same: bool


class Embedder:
    """A trained encoder with its feature extractor, ready to embed audio.

    Args:
        encoder: ``forward(feats (B, T, F), lengths (B,)) -> (B, D)``, with ``embed_dim``.
        features: the fbank settings the encoder was trained with.
        device: where features and the encoder run.
        meta: free-form information about the model (source, step, ...).
        chunk_seconds: longer utterances are embedded in windows of this length (None: never).
        chunk_overlap: minimum overlap of consecutive windows, seconds.
        min_seconds: shorter audio is an error (:class:`~dino_speech.audio.AudioTooShortError`).
        max_batch_seconds: cap on padded audio per encoder batch (bounds memory; None: 20 s
            on a CPU, 480 s elsewhere, see the module docstring).
        precision: ``"bf16"`` runs the encoder under bfloat16 autocast on CUDA and on CPUs
            with native bf16 (:func:`~dino_speech.runtime.bf16_autocast`); ``"fp32"``.
        model_path: where the model was loaded from (set by :meth:`from_pretrained`); its
            stored decision threshold (``threshold.json``) is what :meth:`verify` uses.
        layer: ``"embedding"``, the encoder's output, or ``"pooled"``, the pooled statistics
            its last layer reads (:class:`~dino_speech.models.pooled.PooledStatistics`).
    """

    def __init__(
        self,
        encoder: nn.Module,
        features: FbankConfig,
        *,
        device: str | torch.device = "cpu",
        meta: dict[str, Any] | None = None,
        chunk_seconds: float | None = 30.0,
        chunk_overlap: float = 5.0,
        min_seconds: float = 0.1,
        max_batch_seconds: float | None = None,
        precision: str = "fp32",
        model_path: str | Path | None = None,
        layer: str = "embedding",
    ) -> None:
        if chunk_seconds is not None and not 0 <= chunk_overlap < chunk_seconds:
            raise ConfigError(
                f"need 0 <= chunk_overlap < chunk_seconds, got {chunk_overlap} and {chunk_seconds}"
            )
        if precision not in ("fp32", "bf16"):
            raise ConfigError(f"unknown precision '{precision}'; valid: fp32, bf16")
        self.device = torch.device(device)
        self.layer = layer
        self.encoder = cut_at_layer(encoder, layer).to(self.device).eval()
        self.features = features
        self.fbank = build_fbank(features).to(self.device).eval()
        self.meta = dict(meta or {})
        self.chunk_seconds = chunk_seconds
        self.chunk_overlap = chunk_overlap
        self.min_seconds = max(min_seconds, features.frame_length_ms / 1000.0)
        if max_batch_seconds is None:
            max_batch_seconds = _CPU_BATCH_SECONDS if self.device.type == "cpu" else 480.0
        self.max_batch_seconds = max_batch_seconds
        self.precision = precision
        self.model_path = None if model_path is None else Path(model_path)

    @classmethod
    def from_pretrained(
        cls, path: str | Path, device: str | torch.device = "cpu", **kwargs: Any
    ) -> Embedder:
        """Load ``EXP/embedder.pt``, an embedder file, a DINO training checkpoint (teacher), a
        speechbrain ECAPA model folder (``hyperparams.yaml`` + ``embedding_model.ckpt``, e.g. a
        local copy of ``spkrec-ecapa-voxceleb``: speechbrain's fbank, normalisation and network,
        embeddings as its ``EncoderClassifier.encode_batch``) or a built-in model name.

        ``device="auto"`` picks CUDA when available; ``kwargs`` go to :class:`Embedder`.
        """
        from dino_speech.loading import load_embedder
        from dino_speech.runtime import resolve_device

        resolved = resolve_device(str(device)) if isinstance(device, str) else device
        encoder, features, meta = load_embedder(path, resolved)
        kwargs.setdefault("model_path", path)
        return cls(encoder, features, device=resolved, meta=meta, **kwargs)

    @property
    def embed_dim(self) -> int:
        return int(self.encoder.embed_dim)

    @property
    def sample_rate(self) -> int:
        return int(self.features.sample_rate)

    def __repr__(self) -> str:
        return (
            f"Embedder({type(self.encoder).__name__}, dim={self.embed_dim}, layer={self.layer}, "
            f"sample_rate={self.sample_rate}, device={self.device})"
        )

    # ------------------------------------------------------------------ public embedding API

    def embed_file(self, path: str | Path) -> np.ndarray:
        """Embedding ``(D,)`` float32 of one audio file (raises AudioError naming it)."""
        wave = read_audio(path, self.sample_rate, min_seconds=self.min_seconds)
        warn_if_silent(wave, path)
        return self._embed_waves([wave])[0]

    def embed_array(self, wave: np.ndarray | torch.Tensor, sample_rate: int) -> np.ndarray:
        """Embedding ``(D,)`` of a waveform in [-1, 1] at ``sample_rate``.

        ``wave`` is ``(S,)``, or 2-D with channels on the shorter axis (``(C, S)`` as torchaudio
        or ``(S, C)`` as soundfile returns); channels are averaged.
        """
        x = torch.as_tensor(np.asarray(wave) if not isinstance(wave, torch.Tensor) else wave)
        x = x.detach().to("cpu", torch.float32)
        if x.dim() == 2:
            x = x.mean(dim=0 if x.shape[0] <= x.shape[1] else 1)
        if x.dim() != 1:
            raise DataError(f"expected a waveform of shape (S,) or (C, S), got {tuple(x.shape)}")
        validate_waveform(x, "<array>", sample_rate=sample_rate)
        x = resample(x, int(sample_rate), self.sample_rate)
        validate_waveform(x, "<array>", sample_rate=self.sample_rate, min_seconds=self.min_seconds)
        return self._embed_waves([x])[0]

    def embed_files(
        self,
        paths: Sequence[str | Path],
        *,
        batch_size: int = 16,
        num_workers: int = 0,
        progress: bool = True,
    ) -> np.ndarray:
        """Embeddings ``(N, D)`` of ``paths``, in their order (the first bad file raises)."""
        items = [(str(p), p) for p in paths]
        return self.embed_items(
            items, batch_size=batch_size, num_workers=num_workers, progress=progress
        ).vectors

    def embed_cuts(
        self, cuts: Any, *, batch_size: int = 16, num_workers: int = 0, progress: bool = True
    ) -> tuple[list[str], np.ndarray]:
        """``(cut ids, embeddings (N, D))`` of a Lhotse CutSet (or any iterable of cuts)."""
        items = [(c.id, c) for c in cuts]
        result = self.embed_items(
            items, batch_size=batch_size, num_workers=num_workers, progress=progress
        )
        return result.ids, result.vectors

    def embed_items(
        self,
        items: Sequence[tuple[str, Any]],
        *,
        batch_size: int = 16,
        num_workers: int = 0,
        progress: bool = True,
        skip_bad: bool = False,
        sink: Callable[[str, np.ndarray], None] | None = None,
    ) -> EmbedResult:
        """Embed ``[(id, path or cut), ...]``; with ``skip_bad`` unreadable audio is skipped.

        With ``sink``, every ``(id, (D,) vector)`` is handed to ``sink`` as soon as it is
        computed (e.g. ``EmbeddingWriter.add``, so memory stays bounded for any list) and the
        result holds only what was skipped: its ``ids`` are empty, ``vectors`` is ``(0, D)``.
        """
        ids: list[str] = []
        vectors: list[np.ndarray] = []
        skipped: list[tuple[str, str]] = []
        for utt, out in self.iter_embed(
            items,
            batch_size=batch_size,
            num_workers=num_workers,
            progress=progress,
            skip_bad=skip_bad,
        ):
            if isinstance(out, AudioError):
                skipped.append((utt, str(out)))
            elif sink is not None:
                sink(utt, out)
            else:
                ids.append(utt)
                vectors.append(out)
        X = np.stack(vectors) if vectors else np.zeros((0, self.embed_dim), np.float32)
        return EmbedResult(ids, X, skipped)

    def iter_embed(
        self,
        items: Sequence[tuple[str, Any]],
        *,
        batch_size: int = 16,
        num_workers: int = 0,
        progress: bool = True,
        skip_bad: bool = False,
        bucket_factor: int = 16,
    ) -> Iterator[tuple[str, np.ndarray | AudioError]]:
        """Yield ``(id, (D,) embedding)`` in input order, streaming (bounded memory).

        With ``skip_bad`` an unreadable item yields ``(id, AudioError)`` (and is logged)
        instead of raising.
        """
        if batch_size < 1 or num_workers < 0 or bucket_factor < 1:
            raise ConfigError("batch_size and bucket_factor must be >= 1, num_workers >= 0")
        dataset = _AudioDataset(items, self.sample_rate, self.min_seconds)
        loader = DataLoader(
            dataset,
            batch_size=None,
            shuffle=False,
            num_workers=num_workers,
            collate_fn=_identity,
            prefetch_factor=4 if num_workers else None,
        )
        pool_size = batch_size * bucket_factor
        pool_samples = int(bucket_factor * self.max_batch_seconds * self.sample_rate)
        pooled = 0
        bar = tqdm(total=len(dataset), desc="embedding", unit="utt", disable=not progress)
        pool: list[tuple[int, torch.Tensor | AudioError]] = []
        try:
            for index, wave in loader:
                if isinstance(wave, tuple):  # an error from a worker: (type, path, reason)
                    wave = wave[0](wave[1], wave[2])
                    if not skip_bad:
                        raise wave
                    logger.warning("skipping %s: %s", items[index][0], wave)
                pool.append((index, wave))
                if isinstance(wave, torch.Tensor):
                    pooled += wave.shape[0]
                if len(pool) >= pool_size or pooled >= pool_samples:
                    yield from self._flush(pool, items, batch_size)
                    bar.update(len(pool))
                    pool, pooled = [], 0
            yield from self._flush(pool, items, batch_size)
            bar.update(len(pool))
        finally:
            bar.close()

    def score(self, a: Any, b: Any) -> float | np.ndarray:
        """Cosine similarity. ``a``/``b``: embeddings ``(D,)`` or ``(N, D)`` (row-wise), or
        audio file paths (embedded first)."""
        x, y = self._as_embedding(a), self._as_embedding(b)
        x = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
        y = y / np.maximum(np.linalg.norm(y, axis=-1, keepdims=True), 1e-12)
        s = np.sum(x * y, axis=-1)
        return float(s) if s.ndim == 0 else s

    def verify(self, a: Any, b: Any, threshold: float | None = None) -> Verification:
        """Same speaker or not: cosine score of ``a`` and ``b`` (audio paths or ``(D,)``
        embeddings) against ``threshold``.

        ``threshold=None`` takes the one stored beside the model (``threshold.json``, see
        :mod:`dino_speech.eval.threshold_store`).

        Raises:
            ConfigError: no threshold given and none stored for this model.
            AudioError: unreadable audio (naming the file).
        """
        if threshold is None:
            threshold = self.stored_threshold()
        score = self.score(a, b)
        if not isinstance(score, float):
            raise DataError("verify takes one pair; use score() for many")
        return Verification(score, float(threshold), bool(score >= threshold))

    def stored_threshold(self) -> float:
        """The decision threshold stored beside the model (``threshold.json``).

        Raises:
            ConfigError: there is none (or the model was not loaded from a path).
        """
        from dino_speech.eval.threshold_store import THRESHOLD_FILE, load_threshold

        if self.layer != "embedding":
            raise ConfigError(
                f"the stored threshold scores the model's embeddings, not its '{self.layer}' "
                "layer: give a threshold measured on this layer"
            )
        stored = load_threshold(self.model_path) if self.model_path is not None else None
        if stored is None:
            raise ConfigError(
                f"no stored threshold for {self.model_path or 'this model'} (no "
                f"{THRESHOLD_FILE} beside it): give a threshold, e.g. the EER threshold that "
                f"'dino-speech score' prints"
            )
        return stored.threshold

    # ------------------------------------------------------------------ internals

    def _as_embedding(self, value: Any) -> np.ndarray:
        if isinstance(value, (str, Path)):
            return self.embed_file(value)
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        return np.asarray(value, dtype=np.float64)

    def _flush(
        self,
        pool: list[tuple[int, torch.Tensor | AudioError]],
        items: Sequence[tuple[str, Any]],
        batch_size: int,
    ) -> Iterator[tuple[str, np.ndarray | AudioError]]:
        warn_silent_items(pool, items)
        waves = [w for _, w in pool if not isinstance(w, AudioError)]
        vectors = iter(self._embed_waves(waves, batch_size))
        for index, wave in pool:
            yield items[index][0], wave if isinstance(wave, AudioError) else next(vectors)

    def _segments(self, wave: torch.Tensor) -> list[torch.Tensor]:
        """Equal windows covering ``wave`` (one segment when it is short enough)."""
        if self.chunk_seconds is None:
            return [wave]
        size = int(round(self.chunk_seconds * self.sample_rate))
        if wave.shape[0] <= size:
            return [wave]
        hop = size - int(round(self.chunk_overlap * self.sample_rate))
        count = -(-(wave.shape[0] - size) // hop) + 1  # windows so that the last reaches the end
        starts = np.linspace(0, wave.shape[0] - size, count).round().astype(np.int64)
        return [wave[s : s + size] for s in starts]

    @torch.inference_mode()
    def _embed_waves(self, waves: Sequence[torch.Tensor], batch_size: int = 16) -> np.ndarray:
        """``len(waves)`` embeddings ``(N, D)``: segment, bucket by length, batch, average."""
        segments: list[tuple[int, torch.Tensor]] = []
        for i, wave in enumerate(waves):
            segments.extend((i, seg) for seg in self._segments(wave))
        order = sorted(range(len(segments)), key=lambda j: -segments[j][1].shape[0])
        seg_out = torch.empty(len(segments), self.embed_dim)
        max_samples = int(self.max_batch_seconds * self.sample_rate)
        start = 0
        while start < len(order):
            longest = segments[order[start]][1].shape[0]
            count = max(1, min(batch_size, max_samples // max(longest, 1)))
            batch = order[start : start + count]
            seg_out[batch] = self._forward([segments[j][1] for j in batch])
            start += count
        sums = torch.zeros(len(waves), self.embed_dim)
        counts = torch.zeros(len(waves), 1)
        owners = torch.tensor([i for i, _ in segments], dtype=torch.long)
        sums.index_add_(0, owners, seg_out)
        counts.index_add_(0, owners, torch.ones(len(segments), 1))
        return (sums / counts).numpy()

    def _forward(self, waves: Sequence[torch.Tensor]) -> torch.Tensor:
        """A padded batch of 1-D waves → ``(B, D)`` float32 on the CPU."""
        lengths = torch.tensor([w.shape[0] for w in waves], dtype=torch.long)
        batch = torch.zeros(len(waves), int(lengths.max()))
        for i, w in enumerate(waves):
            batch[i, : w.shape[0]] = w
        batch, lengths = batch.to(self.device), lengths.to(self.device)
        use_bf16 = bf16_autocast(self.device, self.precision)
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=use_bf16):
            feats, frame_lengths = self.fbank(batch, lengths)
            emb = self.encoder(feats, frame_lengths)
        return emb.float().cpu()


class _AudioDataset(Dataset):
    """``[(id, path or cut)]`` → ``(index, wave (S,))`` or ``(index, (error type, path, reason))``.

    Errors travel as a tuple because exceptions with extra constructor arguments do not
    survive pickling between DataLoader workers.
    """

    def __init__(self, items: Sequence[tuple[str, Any]], sample_rate: int, min_seconds: float):
        self.items = items
        self.sample_rate = sample_rate
        self.min_seconds = min_seconds

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[int, Any]:
        _, source = self.items[index]
        try:
            if isinstance(source, (str, Path)):
                wave = read_audio(source, self.sample_rate, min_seconds=self.min_seconds)
            else:
                wave = read_cut(source, self.sample_rate, min_seconds=self.min_seconds)
        except AudioError as exc:
            return index, (type(exc), exc.path, exc.reason)
        return index, wave


def _identity(x: Any) -> Any:
    return x
