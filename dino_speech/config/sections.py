"""Config sections that more than one experiment uses.

* :class:`FbankConfig` and :class:`EncoderConfig`: what a trained embedder is made of (the
  DINO config sets them; pseudo-labeling reads them back from the init model's package).
* :class:`AugmentConfig`: the waveform augmentation of DINO and of fine-tuning.
* :class:`AudioDataConfig`: the ``data`` keys both speech experiments share (training cuts,
  noise and RIR manifests, batches, workers, augmentation); the DINO section
  (:class:`~dino_speech.config.dino.DataConfig`) extends it with shards, crops and features,
  the pseudo-labeling section only changes the batch size.
* :class:`RunConfig`: the ``train`` keys both share (seed, device, precision, checkpoints,
  budget, logging); DINO's :class:`~dino_speech.config.dino.TrainConfig` adds the epochs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from dino_speech.config.loader import setting

__all__ = ["AudioDataConfig", "AugmentConfig", "EncoderConfig", "FbankConfig", "RunConfig"]

D = TypeVar("D", bound="AudioDataConfig")


@dataclass
class FbankConfig:
    """Log-Mel filterbank features, computed batched on the training device."""

    sample_rate: int = 16000
    num_mel_bins: int = 80
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    low_freq: float = 20.0
    high_freq: float = 7600.0
    mean_norm: Literal["sliding", "utterance", "none"] = setting(
        "sliding",
        "'sliding': subtract the mean over a centred window of mean_norm_window frames (the "
        "paper's short-time mean normalisation); 'utterance': over the whole crop; 'none'.",
    )
    mean_norm_window: int = setting(150, "Frames of the sliding mean normalisation window.")
    wave_scale: float = setting(
        32768.0,
        "Waveforms in [-1, 1] are scaled to Kaldi's 16-bit sample range before framing, as "
        "Kaldi, hyperion and WeSpeaker do; it only moves the log floor (float32 eps) relative "
        "to speech.",
    )
    frontend: Literal["kaldi", "speechbrain"] = setting(
        "kaldi",
        "'kaldi': this toolkit's Kaldi-compatible fbank (dino_speech.data.features.Fbank); "
        "'speechbrain': speechbrain's own Fbank and sentence mean normalisation, the front end "
        "of a speechbrain ECAPA model folder "
        "(dino_speech.data.features_speechbrain.SpeechbrainFbank; mean_norm 'utterance' or "
        "'none', wave_scale 1).",
    )


@dataclass
class EncoderConfig:
    """An encoder from the registry (`dino_speech.models.registry`) and its keyword arguments."""

    name: str = setting("ecapa_c512", "Encoder name in dino_speech.models.registry.")
    kwargs: dict[str, Any] = setting(
        help="Keyword arguments of the encoder, e.g. {channels: 512}.", default_factory=dict
    )


_BANK = "Noise and RIRs live in banks on the training device (dino_speech.data.noise_bank). "


@dataclass
class AugmentConfig:
    """Waveform augmentation (on the device, batched, an independent draw per crop)."""

    noise_prob: float = setting(0.7, "Probability of adding noise (MUSAN or generated) to a crop.")
    noise_snr: tuple[float, float] = setting((0.0, 18.0), "SNR range (dB) of MUSAN noise.")
    music_snr: tuple[float, float] = setting((3.0, 18.0), "SNR range (dB) of MUSAN music.")
    babble_snr: tuple[float, float] = setting((13.0, 20.0), "SNR range (dB) of babble.")
    babble_speakers: tuple[int, int] = setting((3, 7), "Range of speakers mixed into babble.")
    reverb_prob: float = setting(0.45, "Probability of convolving a crop with an RIR.")
    gain_prob: float = setting(0.0, "Probability of a random gain in gain_db.")
    gain_db: tuple[float, float] = setting((-6.0, 6.0), "Range of the random gain (dB).")
    specaug_prob: float = setting(
        0.0,
        "SpecAugment on student crops only: probability per crop (masks in frames / mel bins).",
    )
    time_masks: int = setting(2, "SpecAugment: time masks per crop.")
    time_mask_max: int = setting(20, "SpecAugment: the most frames of one time mask.")
    freq_masks: int = setting(2, "SpecAugment: frequency masks per crop.")
    freq_mask_max: int = setting(8, "SpecAugment: the most mel bins of one frequency mask.")
    bank_size: int = setting(
        128, _BANK + "Segments of bank_seconds per MUSAN category in the bank."
    )
    synthetic_bank_size: int = setting(
        32, _BANK + "Segments per category when generated (no MUSAN/RIR manifest)."
    )
    bank_seconds: float = setting(6.0, _BANK + "Seconds of each bank segment.")
    bank_refresh_every: int = setting(
        200, _BANK + "Replace bank_refresh_size slots per category every N augmentation calls."
    )
    bank_refresh_size: int = setting(
        16, _BANK + "Slots per category replaced with new random files at each refresh."
    )
    rir_max_seconds: float = setting(1.0, "RIRs are cut to this length after their direct path.")
    synthetic_rt60: tuple[float, float] = setting(
        (0.2, 0.9), "RT60 range (s) of generated RIRs (no RIR manifest)."
    )


@dataclass
class AudioDataConfig:
    """The training cuts and how batches are made from them (shared ``data`` keys)."""

    train_cuts: str = setting("", "Lhotse cuts manifest (.jsonl.gz) of the training audio.")
    musan_cuts: str | None = setting(
        None, "MUSAN cuts (noise, music, babble); null: generated noise."
    )
    rir_cuts: str | None = setting(None, "Room impulse response cuts; null: generated RIRs.")
    min_duration: float = setting(
        0.0, "Cuts shorter than this (seconds) are dropped from training."
    )
    batch_size: int = setting(96, "Cuts per batch on each rank.")
    num_workers: int = setting(4, "Data loader worker processes.")
    prefetch_factor: int = setting(2, "Batches each loader worker keeps ready.")
    augment_on: Literal["auto", "device", "workers"] = setting(
        "auto",
        "Where augmentation and fbank run: 'device' (the training process, on its device), "
        "'workers' (each loader worker for its whole batch; draws derived from the batch's "
        "position) or 'auto' (workers when training on a CPU with workers, else device).",
    )
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def as_section(self, cls: type[D], **changes: Any) -> D:
        """These shared keys as a ``cls`` section (a subclass), with ``changes`` on top."""
        shared = {f.name: getattr(self, f.name) for f in dataclasses.fields(AudioDataConfig)}
        return cls(**{**shared, **changes})


@dataclass
class RunConfig:
    """Running a training job: seed, device, precision, checkpoints, budget, logging."""

    seed: int = 0
    device: str = setting("auto", "'auto': cuda:<LOCAL_RANK> when CUDA is available, else cpu.")
    precision: Literal["bf16", "fp32"] = setting(
        "bf16",
        "bf16 autocast on CUDA and on CPUs with native bf16 (AVX512-BF16 or AMX); "
        "float32 on other CPUs.",
    )
    log_every: int = setting(50, "Log the training losses every N steps.")
    checkpoint_every: int = setting(
        1000,
        "A checkpoint every N steps (0: only at epoch ends); the newest keep_last of them and "
        "of the epoch checkpoints are kept.",
    )
    keep_last: int = setting(3, "Checkpoints of each kind kept (0 keeps all).")
    max_minutes: float | None = setting(
        None, "Wall-clock budget; when spent, training stops cleanly (checkpoint + embedder.pt)."
    )
    fit_to_budget: bool = setting(
        True,
        "With max_minutes: end the schedules when the budget ends, from the measured step "
        "time, rather than cutting the run off mid-schedule.",
    )
    tensorboard: bool = setting(True, "Write TensorBoard logs under EXP-DIR/tb.")
    sync_batchnorm: bool = setting(
        True,
        "Under DDP (more than one process): BatchNorm statistics over the global batch of all "
        "processes, as the original DINO (torch.nn.SyncBatchNorm on CUDA, an all-reduce "
        "BatchNorm on CPU/gloo); false: each process normalises its own share. No effect in "
        "one process.",
    )
