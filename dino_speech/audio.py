"""Reading audio: the one place in the toolkit where audio files are opened.

Everything goes through :func:`read_audio` (a file path) or :func:`read_cut` (a Lhotse cut):
soundfile reads wav/flac/ogg at any sample rate and channel count, channels are averaged to
mono, torchaudio resamples to the requested rate, and the result is validated. (Cuts that need
more than a file read, such as speed-perturbed ones, are loaded by Lhotse inside
:func:`read_cut`, and validated the same way.) Each failure
has its own exception type, all deriving from :class:`AudioError`, and the message names the
file, so a training loop can skip-and-count and a CLI can print one clear line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as taf

from dino_speech.errors import DinoSpeechError

if TYPE_CHECKING:
    from lhotse.cut import Cut

__all__ = [
    "AudioError",
    "AudioNotFoundError",
    "AudioReadError",
    "EmptyAudioError",
    "AudioTooShortError",
    "NonFiniteAudioError",
    "audio_info",
    "read_audio",
    "read_cut",
    "resample",
    "validate_waveform",
    "write_audio",
]


class AudioError(DinoSpeechError):
    """A problem with one audio file; ``path`` names it."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class AudioNotFoundError(AudioError):
    """The file does not exist."""


class AudioReadError(AudioError):
    """The file exists but cannot be decoded."""


class EmptyAudioError(AudioError):
    """The file (or the requested segment) holds no samples."""


class AudioTooShortError(AudioError):
    """The audio is shorter than the required minimum."""


class NonFiniteAudioError(AudioError):
    """The audio holds NaN or infinite samples."""


def audio_info(path: str | Path) -> tuple[int, int, int]:
    """``(sample_rate, num_frames, num_channels)`` of a file without reading its samples."""
    path = _existing(path)
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise AudioReadError(path, f"cannot read audio: {_reason(exc)}") from None
    return int(info.samplerate), int(info.frames), int(info.channels)


def read_audio(
    path: str | Path,
    sample_rate: int | None = 16000,
    *,
    offset: float = 0.0,
    duration: float | None = None,
    min_seconds: float = 0.0,
    channels: Sequence[int] | None = None,
) -> torch.Tensor:
    """Read a file (or the segment ``[offset, offset + duration)`` seconds of it) as mono.

    Args:
        path: a wav/flac/ogg file.
        sample_rate: resample to this rate; ``None`` keeps the file's rate.
        offset, duration: the segment to read, in seconds of the file's own time line.
        min_seconds: raise :class:`AudioTooShortError` below this length.
        channels: average only these channels (default: all of them).

    Returns:
        ``(num_samples,)`` float32 tensor in [-1, 1] at ``sample_rate``.
    """
    path = _existing(path)
    try:
        with sf.SoundFile(str(path)) as f:
            file_sr = f.samplerate
            start = max(0, int(round(offset * file_sr)))
            frames = -1 if duration is None else max(0, int(round(duration * file_sr)))
            if start:
                f.seek(min(start, f.frames))
            data = f.read(frames=frames, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise AudioReadError(path, f"cannot read audio: {_reason(exc)}") from None
    if channels is not None:
        if any(c < 0 or c >= data.shape[1] for c in channels):
            raise AudioReadError(path, f"has {data.shape[1]} channel(s); cannot read {channels}")
        data = data[:, list(channels)]
    mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1)
    wave = torch.from_numpy(np.ascontiguousarray(mono))
    target_sr = sample_rate or file_sr
    if target_sr == file_sr:
        validate_waveform(wave, path, sample_rate=file_sr, min_seconds=min_seconds)
        return wave
    validate_waveform(wave, path, sample_rate=file_sr, min_seconds=0.0)
    wave = resample(wave, file_sr, target_sr)
    validate_waveform(wave, path, sample_rate=target_sr, min_seconds=min_seconds)
    return wave


def read_cut(
    cut: Cut, sample_rate: int | None = 16000, *, min_seconds: float = 0.0
) -> torch.Tensor:
    """Read the audio of a Lhotse cut as a mono tensor at ``sample_rate``.

    A cut of one audio file without recording transforms (what every preparer of this toolkit
    writes) is read here with soundfile: only the cut's segment, only the cut's channel(s),
    averaged. Anything else (speed-perturbed or otherwise transformed recordings, one file per
    channel, in-memory or URL sources) is loaded through Lhotse's own ``cut.load_audio()``,
    which applies the transforms and picks the right source, and then validated and resampled
    the same way; its failures become :class:`AudioReadError`.

    Returns:
        ``(num_samples,)`` float32.
    """
    recording = getattr(cut, "recording", None)
    if recording is None or not recording.sources:
        raise AudioReadError(getattr(cut, "id", "<cut>"), "cut has no recording to read")
    if len(recording.sources) > 1 or recording.transforms or recording.sources[0].type != "file":
        return _read_cut_with_lhotse(cut, sample_rate, min_seconds)
    source = recording.sources[0]
    wanted = cut.channel if isinstance(cut.channel, (list, tuple)) else [cut.channel]
    channels = list(wanted) if list(source.channels) == list(recording.channel_ids) else None
    return read_audio(
        source.source,
        sample_rate,
        offset=float(cut.start),
        duration=float(cut.duration),
        min_seconds=min_seconds,
        channels=channels,
    )


def _read_cut_with_lhotse(cut: Cut, sample_rate: int | None, min_seconds: float) -> torch.Tensor:
    """:func:`read_cut` for cuts the soundfile path does not cover (see there)."""
    files = [s.source for s in cut.recording.sources if s.type == "file"]
    where = files[0] if len(files) == 1 else f"cut {cut.id}"
    for path in files:
        _existing(path)
    try:
        audio = cut.load_audio()  # (channels, samples) at cut.sampling_rate
    except Exception as exc:  # noqa: BLE001 - Lhotse's backends raise many types
        raise AudioReadError(where, f"cannot read audio: {_reason(exc)}") from None
    wave = torch.from_numpy(np.ascontiguousarray(np.asarray(audio, dtype=np.float32)))
    wave = wave.reshape(-1, wave.shape[-1]).mean(dim=0) if wave.dim() > 1 else wave
    file_sr = int(cut.sampling_rate)
    validate_waveform(wave, where, sample_rate=file_sr)
    target_sr = sample_rate or file_sr
    wave = resample(wave, file_sr, target_sr)
    validate_waveform(wave, where, sample_rate=target_sr, min_seconds=min_seconds)
    return wave


def resample(wave: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Resample ``(..., num_samples)`` from ``orig_sr`` to ``new_sr`` (identity if equal)."""
    if orig_sr == new_sr:
        return wave
    g = math.gcd(int(orig_sr), int(new_sr))
    return taf.resample(wave, int(orig_sr) // g, int(new_sr) // g)


def validate_waveform(
    wave: torch.Tensor, path: str | Path, *, sample_rate: int, min_seconds: float = 0.0
) -> None:
    """Raise the matching :class:`AudioError` if ``wave`` is empty, non-finite or too short."""
    if wave.numel() == 0:
        raise EmptyAudioError(path, "audio is empty (0 samples)")
    # a NaN or an infinity makes the sum NaN or infinite: the exact check only then
    if not math.isfinite(float(wave.sum())) and not bool(torch.isfinite(wave).all()):
        raise NonFiniteAudioError(path, "audio contains NaN or infinite samples")
    seconds = wave.shape[-1] / sample_rate
    if seconds < min_seconds:
        raise AudioTooShortError(
            path, f"audio is {seconds:.3f} s long, shorter than the minimum {min_seconds:.3f} s"
        )


def write_audio(path: str | Path, wave: torch.Tensor | np.ndarray, sample_rate: int) -> None:
    """Write a mono ``(num_samples,)`` waveform in [-1, 1] as 16-bit PCM (wav/flac by suffix)."""
    data = wave.detach().cpu().numpy() if isinstance(wave, torch.Tensor) else np.asarray(wave)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(data, -1.0, 1.0).astype(np.float32), sample_rate, subtype="PCM_16")


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise AudioNotFoundError(path, "audio file not found")
    return path


def _reason(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
