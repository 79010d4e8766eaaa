"""Typed experiment configs: nested dataclasses, strict YAML load/save, dotted overrides.

One YAML file describes one experiment. Loading is strict: an unknown or mistyped key, or a
value of the wrong type, raises :class:`~dino_speech.errors.ConfigError` naming the key and
listing the valid ones. Overrides on the command line use dotted paths::

    dino-speech train dino --config recipes/mini.yaml --exp-dir exp/mini train.epochs=3 \
        optim.lr=0.01 data.crops.num_local=2

Values in overrides are parsed as YAML scalars (``3`` is an int, ``[2, 4]`` a list, ``null``
None) and then checked against the field's type.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from dino_speech.errors import ConfigError

T = TypeVar("T")

# --------------------------------------------------------------------------- machinery


def to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass config as plain nested dicts/lists (tuples become lists), ready for YAML."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(cfg)


def from_dict(cls: type[T], data: Mapping[str, Any] | None, *, where: str = "") -> T:
    """Build dataclass ``cls`` from nested mappings, checking every key and type."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{_label(where)} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise ConfigError(_unknown_key_message(unknown[0], where, list(fields)))
    kwargs = {}
    for name, f in fields.items():
        key = f"{where}.{name}" if where else name
        if name in data:
            kwargs[name] = _coerce(data[name], hints[name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required config key '{key}'")
    return cls(**kwargs)


def apply_overrides(cfg: T, overrides: Sequence[str]) -> T:
    """Return a copy of ``cfg`` with dotted ``key=value`` overrides applied."""
    data = to_dict(cfg)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override '{item}' is not of the form key.subkey=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override '{item}': cannot parse value: {exc}") from None
        node: dict[str, Any] = data
        parts = key.split(".")
        cls: Any = type(cfg)
        for depth, part in enumerate(parts):
            where = ".".join(parts[:depth])
            names = [f.name for f in dataclasses.fields(cls)]
            if part not in names:
                raise ConfigError(_unknown_key_message(part, where, names))
            if depth == len(parts) - 1:
                node[part] = value
                break
            sub = typing.get_type_hints(cls)[part]
            if not (isinstance(sub, type) and dataclasses.is_dataclass(sub)):
                raise ConfigError(
                    f"'{'.'.join(parts[: depth + 1])}' is not a section; cannot set '{key}'"
                )
            cls = sub
            node = node[part]
    return from_dict(type(cfg), data)


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Load ``cls`` from a YAML file (or defaults when ``path`` is None), then apply overrides."""
    data: Any = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    try:
        cfg = from_dict(cls, data)
    except ConfigError as exc:
        if path is None:
            raise
        raise ConfigError(f"{path}: {exc}") from None
    return apply_overrides(cfg, overrides)


def save_config(cfg: Any, path: str | Path) -> None:
    """Write ``cfg`` as YAML; ``load_config(type(cfg), path)`` gives it back unchanged."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))


def _label(where: str) -> str:
    return f"'{where}'" if where else "the config"


def _unknown_key_message(key: str, where: str, valid: list[str]) -> str:
    full = f"{where}.{key}" if where else key
    hint = difflib.get_close_matches(key, valid, n=1)
    did_you_mean = f" (did you mean '{hint[0]}'?)" if hint else ""
    return (
        f"unknown config key '{full}'{did_you_mean}; valid keys of {_label(where)}: "
        + ", ".join(valid)
    )


def _coerce(value: Any, tp: Any, key: str) -> Any:  # noqa: C901 - one branch per type form
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(
            errors[0] if len(errors) == 1 else f"'{key}': {value!r} fits none of {tp}"
        )
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(f"'{key}' must be one of {choices}, got {value!r}")
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where=key)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"'{key}' must be a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"'{key}' must have {len(args)} items, got {len(value)}")
            items = [
                _coerce(v, a, f"{key}[{i}]")
                for i, (v, a) in enumerate(zip(value, args, strict=True))
            ]
        else:
            item_tp = args[0] if args else Any
            items = [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"'{key}' must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"'{key}' must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"'{key}' must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):
            # YAML 1.1 reads "1e-3" (no dot) as a string; accept any number spelled as text.
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"'{key}' must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, (dict, list, tuple)) or value is None:
            raise ConfigError(f"'{key}' must be a string, got {value!r}")
        return str(value)
    raise ConfigError(f"'{key}': unsupported config type {tp}")


# --------------------------------------------------------------------------- DINO experiment


@dataclass
class FbankConfig:
    """Log-Mel filterbank features, computed batched on the training device."""

    sample_rate: int = 16000
    num_mel_bins: int = 80
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    low_freq: float = 20.0
    high_freq: float = 7600.0
    # "sliding": subtract the mean over a centred window of `mean_norm_window` frames (the
    # paper's short-time mean normalisation); "utterance": over the whole crop; "none".
    mean_norm: Literal["sliding", "utterance", "none"] = "sliding"
    mean_norm_window: int = 150
    # Waveforms in [-1, 1] are scaled to Kaldi's 16-bit sample range before framing, as Kaldi,
    # hyperion and WeSpeaker do; it only moves the log floor (float32 eps) relative to speech.
    wave_scale: float = 32768.0
    # "kaldi": this toolkit's Kaldi-compatible fbank (dino_speech.data.features.Fbank);
    # "speechbrain": speechbrain's own Fbank and sentence mean normalisation, the front end of
    # a speechbrain ECAPA model folder (dino_speech.models.speechbrain_ecapa.SpeechbrainFbank;
    # mean_norm "utterance" or "none", wave_scale 1).
    frontend: Literal["kaldi", "speechbrain"] = "kaldi"


@dataclass
class CropConfig:
    """Multi-crop sampling: the teacher sees the global crops, the student all of them."""

    num_global: int = 2
    global_seconds: float = 4.0
    num_local: int = 4
    local_seconds: float = 2.0
    # Spread the crops of each group over the utterance (one stratum each) instead of drawing
    # their positions independently: less overlap between the views of short utterances.
    spread: bool = False


@dataclass
class AugmentConfig:
    """Waveform augmentation (on the device, batched, an independent draw per crop)."""

    noise_prob: float = 0.7
    noise_snr: tuple[float, float] = (0.0, 18.0)
    music_snr: tuple[float, float] = (3.0, 18.0)
    babble_snr: tuple[float, float] = (13.0, 20.0)
    babble_speakers: tuple[int, int] = (3, 7)
    reverb_prob: float = 0.45
    gain_prob: float = 0.0
    gain_db: tuple[float, float] = (-6.0, 6.0)
    # SpecAugment on student crops only (probability per crop, masks in frames / mel bins).
    specaug_prob: float = 0.0
    time_masks: int = 2
    time_mask_max: int = 20
    freq_masks: int = 2
    freq_mask_max: int = 8
    # Noise and RIRs live in banks on the training device (dino_speech.data.noise_bank):
    # `bank_size` segments of `bank_seconds` per MUSAN category (`synthetic_bank_size` when
    # generated, no MUSAN/RIR manifest), `bank_refresh_size` slots per category replaced with
    # new random files every `bank_refresh_every` augmentation calls. RIRs are cut to
    # `rir_max_seconds` after their direct path; generated RIRs have an RT60 in `synthetic_rt60`.
    bank_size: int = 128
    synthetic_bank_size: int = 32
    bank_seconds: float = 6.0
    bank_refresh_every: int = 200
    bank_refresh_size: int = 16
    rir_max_seconds: float = 1.0
    synthetic_rt60: tuple[float, float] = (0.2, 0.9)


@dataclass
class DataConfig:
    """Where the training cuts come from and how they become batches."""

    train_cuts: str = ""
    # Instead of train_cuts: a folder of Lhotse Shar shards (`dino-speech shar`), read front
    # to back, whole shards per rank and worker, through a shuffle buffer of
    # `shar_shuffle_buffer` cuts (dino_speech.data.shar_loader).
    train_shar: str = ""
    shar_shuffle_buffer: int = 1000
    musan_cuts: str | None = None
    rir_cuts: str | None = None
    min_duration: float = 0.0
    batch_size: int = 96
    num_workers: int = 4
    # `batch_size` is cuts per batch on each rank. The last partial batch of an epoch is
    # dropped (as DINO does) unless `drop_last` is false; each worker keeps `prefetch_factor`
    # batches ready.
    drop_last: bool = True
    prefetch_factor: int = 2
    # Where augmentation and fbank run: "device" (the training process, on its device),
    # "workers" (each loader worker for its whole batch; draws derived from the batch's
    # position) or "auto" (workers when training on a CPU with workers, else device).
    augment_on: Literal["auto", "device", "workers"] = "auto"
    crops: CropConfig = field(default_factory=CropConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    features: FbankConfig = field(default_factory=FbankConfig)


@dataclass
class EncoderConfig:
    """An encoder from the registry (`dino_speech.models.registry`) and its keyword arguments."""

    name: str = "ecapa_c512"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class DinoConfig:
    """DINO head, loss and teacher settings (defaults: Cho et al. 2022 / hyperion dinossl.v1)."""

    out_dim: int = 65536
    hidden_dim: int = 2048
    bottleneck_dim: int = 256
    num_layers: int = 3
    use_bn: bool = False
    norm_last_layer: bool = True
    student_temp: float = 0.1
    teacher_temp: float = 0.04
    warmup_teacher_temp: float = 0.04
    warmup_teacher_temp_epochs: float = 0.0
    center_momentum: float = 0.9
    teacher_momentum: float = 0.996
    teacher_momentum_final: float = 1.0
    freeze_last_layer_epochs: float = 1.0


@dataclass
class OptimConfig:
    """Optimiser and schedules; `lr` is for a total batch of 256 when `scale_lr` is true."""

    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 0.005
    scale_lr: bool = True
    min_lr: float = 1e-6
    warmup_epochs: float = 10.0
    weight_decay: float = 1e-4
    weight_decay_end: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.95)
    amsgrad: bool = True
    momentum: float = 0.9
    # Gradient clipping at `clip_grad` (0: none): "per_param" clips each parameter's gradient
    # norm on its own, as the DINO reference implementation does; "global" clips the norm of
    # all gradients together (torch.nn.utils.clip_grad_norm_).
    clip_grad: float = 3.0
    clip_mode: Literal["per_param", "global"] = "per_param"


@dataclass
class TrainConfig:
    """The training loop: length, device, precision, checkpoints, logging."""

    epochs: int = 70
    # Cap on the batches of one epoch (None: one pass over the training cuts).
    steps_per_epoch: int | None = None
    seed: int = 0
    # "auto": cuda:<LOCAL_RANK> when CUDA is available, else cpu.
    device: str = "auto"
    # bf16 autocast applies on CUDA only; CPU runs are float32.
    precision: Literal["bf16", "fp32"] = "bf16"
    log_every: int = 50
    # A checkpoint every N steps (0: only at epoch ends); keep the newest `keep_last` of them
    # and of the epoch checkpoints (0 keeps all).
    checkpoint_every: int = 1000
    keep_last: int = 3
    # >1: embedder.pt holds the teacher encoder averaged over the last N epoch checkpoints.
    average_last: int = 0
    # Wall-clock budget; when spent, training stops cleanly (checkpoint + embedder.pt).
    max_minutes: float | None = None
    # With max_minutes: end the schedules (lr, weight decay, teacher momentum) when the budget
    # ends, from the measured step time, rather than cutting the run off mid-schedule.
    fit_to_budget: bool = True
    tensorboard: bool = True
    # Steps a teacher collapse (uniform or one-prototype output) must last before a warning.
    collapse_patience: int = 1000
    # Under DDP (more than one process): BatchNorm statistics of the student and the teacher
    # over the global batch of all processes, as the original DINO (torch.nn.SyncBatchNorm on
    # CUDA, an all-reduce BatchNorm on CPU/gloo); false: each process normalises its own share.
    # No effect in one process.
    sync_batchnorm: bool = True


@dataclass
class DinoExperimentConfig:
    """Everything `dino-speech train dino` needs; one YAML file under `recipes/`."""

    data: DataConfig = field(default_factory=DataConfig)
    model: EncoderConfig = field(default_factory=EncoderConfig)
    dino: DinoConfig = field(default_factory=DinoConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# --------------------------------------------------------------------------- pseudo-labeling


@dataclass
class ClusterConfig:
    """Embeddings -> pseudo-speaker labels (defaults: hyperion ``ssl.v1`` cosine AHC chain).

    ``method``: ``kmeans_ahc`` (L2-normalise, PCA, k-means over-clustering, agglomerative
    merge of the centroids on cosine, size filter), ``kmeans`` (``num_clusters`` clusters,
    size filter) or ``ahc`` (agglomerative on the points themselves; exact but quadratic in
    memory, refused above ``max_preclusters`` points). Utterances left out get label -1.
    ``oracle`` is not label-free: the true speakers (``custom[speaker_key]``) are the
    clusters, for the supervised ceiling a pseudo-labeling run is compared with.
    """

    method: Literal["kmeans_ahc", "kmeans", "ahc", "oracle"] = "kmeans_ahc"
    # "auto": faiss when installed, scikit-learn otherwise; "faiss" fails if it is missing.
    backend: Literal["auto", "faiss", "sklearn"] = "auto"
    # L2-normalise before and after PCA; k-means is then spherical (cosine).
    l2_normalize: bool = True
    # Keep this fraction of the variance with PCA (0 < v < 1); null skips PCA.
    pca_variance: float | None = 0.99
    # k-means clusters: required for method=kmeans; for kmeans_ahc it defaults to
    # ceil(N / samples_per_cluster), never capped.
    num_clusters: int | None = None
    samples_per_cluster: float = 4.0
    # The most pre-clusters (kmeans_ahc) or points (ahc) clustered in one piece: one k-means
    # over all points and one dense AHC (memory k^2 / 2 distances). Above it, kmeans_ahc works
    # by parts (dino_speech.pseudo_label.cluster_large): k-means with an inverted-file
    # assignment, then AHC inside k-means cells of the centroids and AHC of the clusters'
    # means, level by level.
    max_preclusters: int = 20000
    # By parts with faiss: each point is compared with the pre-clusters of its ivf_nprobe
    # nearest coarse cells only; without faiss, k-means runs inside cells of ~cell_points.
    ivf_nprobe: int = 8
    cell_points: int = 2000
    # "session": cluster sessions (custom[session_key] of the cuts, e.g. VoxCeleb's videos;
    # an utt2session in `pseudo-label cluster`) instead of utterances, as hyperion does: the
    # L2-normalised utterances of a session are averaged first and all take the session's
    # cluster. k-means then has N_sessions / samples_per_cluster pre-clusters; min_size and
    # max_size still count utterances. Off by default: sessions are weak labels.
    aggregate: Literal["none", "session"] = "none"
    session_key: str = "session"
    # By parts only: rounds of moving every point to its most similar cluster mean (exact),
    # with a merge by parts between rounds; repairs what the approximate pre-clustering mixed.
    refine_iters: int = 2
    kmeans_iters: int = 20
    kmeans_init: Literal["random", "kmeans++"] = "random"
    # faiss only: stop once an iteration changes the k-means objective by less than this
    # fraction (0: always run kmeans_iters iterations).
    kmeans_tol: float = 1e-4
    # scikit-learn only: "auto" uses MiniBatchKMeans above 50000 points, KMeans below.
    sklearn_algorithm: Literal["auto", "lloyd", "minibatch"] = "auto"
    minibatch_size: int = 4096
    # AHC merges while the linkage cosine similarity is above this threshold. "fixed" uses
    # ahc_threshold; "neighbours" reads it off the data it merges (the k-means centroids, or
    # the points for method=ahc): where nearest-neighbour and random-pair similarities cross
    # (dino_speech.pseudo_label.threshold), plus ahc_threshold_offset.
    ahc_threshold: float = 0.8
    ahc_threshold_mode: Literal["fixed", "neighbours"] = "fixed"
    ahc_threshold_offset: float = 0.0
    ahc_linkage: Literal["average", "complete", "single"] = "average"
    # Clusters with fewer than min_size utterances are left out (-1). Clusters above
    # max_size (null: no limit) are dropped ("drop", as hyperion), cut to a random max_size
    # subset ("subsample") or kept whole ("keep").
    min_size: int = 8
    max_size: int | None = 50
    oversize: Literal["drop", "subsample", "keep"] = "drop"
    seed: int = 0


@dataclass
class MarginConfig:
    """Additive angular margin softmax over the pseudo-speakers (hyperion ``ssl.v1``)."""

    margin: float = 0.2
    scale: float = 30.0
    # Sub-centres per class (1: plain AAM softmax); the class cosine is the max over them.
    sub_centers: int = 2
    # Easy margin: apply the margin only where cos(theta) > 0 (ArcFace's variant).
    easy_margin: bool = False
    # The margin grows linearly from 0 to `margin` over this many epochs (0: no warm-up).
    margin_warmup_epochs: float = 10.0


@dataclass
class FinetuneConfig:
    """Two-stage fine-tuning on the pseudo-labels (hyperion ``ssl.v1`` stages 1.1 and 1.2).

    Stage one ("frozen") trains the classifier, and the encoder's final embedding layer when
    ``frozen_train_embedding`` and the encoder exposes one, with the rest of the encoder
    frozen (BatchNorm statistics included); stage two ("full") trains all layers at a lower
    learning rate, starting from stage one's encoder and classifier. Both take one random
    ``crop_seconds`` crop per utterance per step, with the DINO augmentation and the init
    model's fbank. A stage with 0 epochs is skipped.
    """

    crop_seconds: float = 4.0
    frozen_epochs: int = 30
    frozen_lr: float = 0.1
    frozen_train_embedding: bool = True
    full_epochs: int = 70
    full_lr: float = 0.01
    # Cap on the batches of one epoch (None: one pass over the pseudo-labelled cuts).
    steps_per_epoch: int | None = None
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    momentum: float = 0.9
    # Weight decay on weight matrices (not biases or norm parameters).
    weight_decay: float = 1e-4
    # Per stage: linear warm-up over `warmup_epochs`, then a half cosine from the stage's lr
    # down to lr * final_lr_ratio at its last step.
    warmup_epochs: float = 1.0
    final_lr_ratio: float = 0.01
    clip_grad: float = 5.0


@dataclass
class PseudoLabelDataConfig:
    """The cuts to pseudo-label and how fine-tuning batches are made from them.

    The features are not configured here: fine-tuning uses the fbank settings stored in the
    init model's embedder package, since the encoder must see what it was trained on.
    """

    train_cuts: str = ""
    musan_cuts: str | None = None
    rir_cuts: str | None = None
    # Cuts shorter than this are neither embedded, clustered nor trained on.
    min_duration: float = 0.0
    batch_size: int = 128
    num_workers: int = 4
    prefetch_factor: int = 2
    augment_on: Literal["auto", "device", "workers"] = "auto"  # as data.augment_on of DINO
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class PseudoLabelEmbedConfig:
    """Embedding extraction of the training and evaluation cuts (see :class:`Embedder`)."""

    batch_size: int = 32
    num_workers: int = 2
    # Longer utterances are embedded as the mean of windows of this length (None: whole).
    chunk_seconds: float | None = 30.0


@dataclass
class PseudoLabelEvalConfig:
    """Speaker verification after every round: cosine scores of ``trials`` over ``cuts``.

    Both empty: no evaluation (the loop only trains).
    """

    cuts: str = ""
    trials: str = ""
    p_targets: list[float] = field(default_factory=lambda: [0.01, 0.05])


@dataclass
class PseudoLabelTrainConfig:
    """Running the fine-tuning stages: device, precision, seed, checkpoints, logging."""

    seed: int = 0
    # "auto": cuda:<LOCAL_RANK> when CUDA is available, else cpu.
    device: str = "auto"
    # bf16 autocast applies on CUDA only (the margin softmax always runs in float32).
    precision: Literal["bf16", "fp32"] = "bf16"
    log_every: int = 50
    # A checkpoint every N steps (0: only at epoch ends); the newest `keep_last` of each kind
    # are kept (0 keeps all).
    checkpoint_every: int = 1000
    keep_last: int = 2
    # Wall-clock budget of EACH fine-tuning stage; when spent the stage stops cleanly
    # (checkpoint + embedder.pt) and counts as done.
    max_minutes: float | None = None
    # With max_minutes: the learning-rate schedule of each stage ends when its budget ends.
    fit_to_budget: bool = True
    tensorboard: bool = True
    # Under DDP: the encoder's BatchNorm statistics over the global batch of all processes
    # (see TrainConfig.sync_batchnorm); no effect in one process or in a frozen stage.
    sync_batchnorm: bool = True


@dataclass
class PseudoLabelConfig:
    """Iterative pseudo-labeling: cluster the embeddings, fine-tune on the clusters, repeat.

    One YAML file under ``recipes/pseudo_label_*.yaml``; run by ``dino-speech pseudo-label
    run`` starting from a DINO experiment (:mod:`dino_speech.pseudo_label.loop`).
    """

    rounds: int = 2
    # Where each cut's pseudo-speaker (int) is written in the pseudo-labelled cuts.
    label_key: str = "pseudo_speaker"
    # True labels for the cluster quality report (NMI, purity), used when the cuts have them.
    speaker_key: str = "speaker"
    # Fewer clusters than this after the size filter is an error (nothing to learn from).
    min_clusters: int = 2
    # Dotted overrides for single rounds, e.g. {2: ["cluster.ahc_threshold=0.6"]}: round 2
    # clusters the fine-tuned embeddings with another threshold (hyperion ssl.v1 does).
    round_overrides: dict[int, list[str]] = field(default_factory=dict)
    data: PseudoLabelDataConfig = field(default_factory=PseudoLabelDataConfig)
    embed: PseudoLabelEmbedConfig = field(default_factory=PseudoLabelEmbedConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    margin: MarginConfig = field(default_factory=MarginConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    eval: PseudoLabelEvalConfig = field(default_factory=PseudoLabelEvalConfig)
    train: PseudoLabelTrainConfig = field(default_factory=PseudoLabelTrainConfig)
