"""The pseudo-labeling experiment (``dino-speech pseudo-label run``): cluster, fine-tune, repeat.

One YAML file under ``configs/pseudo_label_*.yaml``; its ``data`` and ``train`` sections are
the shared :class:`~dino_speech.config.sections.AudioDataConfig` and
:class:`~dino_speech.config.sections.RunConfig` with their own defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from dino_speech.config.loader import setting
from dino_speech.config.sections import AudioDataConfig, RunConfig

__all__ = [
    "ClusterConfig",
    "FinetuneConfig",
    "MarginConfig",
    "PseudoLabelConfig",
    "PseudoLabelDataConfig",
    "PseudoLabelEmbedConfig",
    "PseudoLabelEvalConfig",
    "PseudoLabelTrainConfig",
]


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

    method: Literal["kmeans_ahc", "kmeans", "ahc", "oracle"] = setting(
        "kmeans_ahc",
        "kmeans_ahc (k-means over-clustering, then AHC of the centroids), kmeans, ahc (on the "
        "points) or oracle (the true speakers; not label-free).",
    )
    backend: Literal["auto", "faiss", "sklearn"] = setting(
        "auto", "'auto': faiss when installed, scikit-learn otherwise; 'faiss' fails if missing."
    )
    l2_normalize: bool = setting(
        True, "L2-normalise before and after PCA; k-means is then spherical (cosine)."
    )
    whiten: bool = setting(
        False,
        "Whiten the (L2-normalised) embeddings with their own mean and Ledoit-Wolf covariance "
        "before PCA (dino_speech.eval.whitening): every direction counts alike in the cosine, "
        "not only the few that carry most of a DINO embedding's variance.",
    )
    pca_variance: float | None = setting(
        0.99, "Keep this fraction of the variance with PCA (0 < v < 1); null skips PCA."
    )
    num_clusters: int | None = setting(
        None,
        "k-means clusters: required for method=kmeans; for kmeans_ahc it defaults to "
        "ceil(N / samples_per_cluster), never capped.",
    )
    samples_per_cluster: float = setting(
        4.0, "kmeans_ahc: points per k-means pre-cluster when num_clusters is null."
    )
    max_preclusters: int = setting(
        20000,
        "The most pre-clusters (kmeans_ahc) or points (ahc) clustered in one piece: one "
        "k-means over all points and one dense AHC (memory k^2 / 2 distances). Above it, "
        "kmeans_ahc works by parts (dino_speech.pseudo_label.cluster_large): k-means with an "
        "inverted-file assignment, then AHC inside k-means cells of the centroids and AHC of "
        "the clusters' means, level by level.",
    )
    ivf_nprobe: int = setting(
        8,
        "By parts with faiss: each point is compared with the pre-clusters of its ivf_nprobe "
        "nearest coarse cells only.",
    )
    cell_points: int = setting(
        2000, "By parts without faiss: k-means runs inside cells of about cell_points points."
    )
    aggregate: Literal["none", "session"] = setting(
        "none",
        "'session': cluster sessions (custom[session_key] of the cuts, e.g. VoxCeleb's videos; "
        "an utt2session in `pseudo-label cluster`) instead of utterances, as hyperion does: the "
        "L2-normalised utterances of a session are averaged first and all take the session's "
        "cluster. k-means then has N_sessions / samples_per_cluster pre-clusters; min_size and "
        "max_size still count utterances. Off by default: sessions are weak labels.",
    )
    session_key: str = setting("session", "Key in the cuts' custom fields naming the session.")
    refine_iters: int = setting(
        2,
        "By parts only: rounds of moving every point to its most similar cluster mean (exact), "
        "with a merge by parts between rounds; repairs what the approximate pre-clustering "
        "mixed.",
    )
    kmeans_iters: int = setting(20, "k-means iterations.")
    kmeans_init: Literal["random", "kmeans++"] = setting("random", "k-means initialisation.")
    kmeans_tol: float = setting(
        1e-4,
        "faiss only: stop once an iteration changes the k-means objective by less than this "
        "fraction (0: always run kmeans_iters iterations).",
    )
    sklearn_algorithm: Literal["auto", "lloyd", "minibatch"] = setting(
        "auto", "scikit-learn only: 'auto' uses MiniBatchKMeans above 50000 points, KMeans below."
    )
    minibatch_size: int = setting(4096, "scikit-learn MiniBatchKMeans batch size.")
    ahc_threshold: float = setting(
        0.8,
        "AHC merges while the linkage cosine similarity is above this threshold "
        "(ahc_threshold_mode=fixed).",
    )
    ahc_threshold_mode: Literal["fixed", "neighbours"] = setting(
        "fixed",
        "'fixed' uses ahc_threshold; 'neighbours' reads it off the data it merges (the k-means "
        "centroids, or the points for method=ahc): where nearest-neighbour and random-pair "
        "similarities cross (dino_speech.pseudo_label.threshold), plus ahc_threshold_offset.",
    )
    ahc_threshold_offset: float = setting(
        0.0, "Added to the threshold read off the data (ahc_threshold_mode=neighbours)."
    )
    ahc_linkage: Literal["average", "complete", "single"] = setting(
        "average", "AHC linkage of cosine similarities."
    )
    min_size: int = setting(
        8, "Clusters with fewer than min_size utterances are left out (label -1)."
    )
    max_size: int | None = setting(
        50, "Clusters above max_size utterances (null: no limit) are handled by oversize."
    )
    oversize: Literal["drop", "subsample", "keep"] = setting(
        "drop",
        "Clusters above max_size are dropped ('drop', as hyperion), cut to a random max_size "
        "subset ('subsample') or kept whole ('keep').",
    )
    seed: int = 0


@dataclass
class MarginConfig:
    """Additive angular margin softmax over the pseudo-speakers (hyperion ``ssl.v1``)."""

    margin: float = setting(0.2, "Additive angular margin (radians).")
    scale: float = setting(30.0, "Scale of the cosine logits.")
    sub_centers: int = setting(
        2,
        "Sub-centres per class (1: plain AAM softmax); the class cosine is the max over them.",
    )
    easy_margin: bool = setting(
        False, "Easy margin: apply the margin only where cos(theta) > 0 (ArcFace's variant)."
    )
    margin_warmup_epochs: float = setting(
        10.0, "The margin grows linearly from 0 to margin over this many epochs (0: no warm-up)."
    )


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

    crop_seconds: float = setting(4.0, "One random crop of this length per utterance per step.")
    frozen_epochs: int = setting(30, "Epochs of the frozen stage (0 skips it).")
    frozen_lr: float = setting(0.1, "Peak learning rate of the frozen stage.")
    frozen_train_embedding: bool = setting(
        True, "The frozen stage also trains the encoder's final embedding layer, if it has one."
    )
    full_epochs: int = setting(70, "Epochs of the full stage (0 skips it).")
    full_lr: float = setting(0.01, "Peak learning rate of the full stage.")
    steps_per_epoch: int | None = setting(
        None, "Cap on the batches of one epoch (null: one pass over the pseudo-labelled cuts)."
    )
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    momentum: float = 0.9
    weight_decay: float = setting(
        1e-4, "Weight decay on weight matrices (not biases or norm parameters)."
    )
    warmup_epochs: float = setting(
        1.0,
        "Per stage: linear warm-up over warmup_epochs, then a half cosine from the stage's lr "
        "down to lr * final_lr_ratio at its last step.",
    )
    final_lr_ratio: float = setting(0.01, "The learning rate at a stage's end, relative to its lr.")
    clip_grad: float = setting(5.0, "Clip the global gradient norm at this value.")


@dataclass
class PseudoLabelDataConfig(AudioDataConfig):
    """The cuts to pseudo-label and how fine-tuning batches are made from them.

    The shared data keys (:class:`~dino_speech.config.sections.AudioDataConfig`), 128 cuts a
    batch. The features are not configured here: fine-tuning uses the fbank settings stored in
    the init model's embedder package, since the encoder must see what it was trained on.
    """

    min_duration: float = setting(
        0.0, "Cuts shorter than this (seconds) are neither embedded, clustered nor trained on."
    )
    batch_size: int = setting(128, "Cuts per fine-tuning batch on each rank.")


@dataclass
class PseudoLabelEmbedConfig:
    """Embedding extraction of the training and evaluation cuts (see :class:`Embedder`)."""

    batch_size: int = 32
    num_workers: int = 2
    chunk_seconds: float | None = setting(
        30.0, "Longer utterances are embedded as the mean of windows of this length (null: whole)."
    )


@dataclass
class PseudoLabelEvalConfig:
    """Speaker verification after every round: cosine scores of ``trials`` over ``cuts``.

    Both empty: no evaluation (the loop only trains).
    """

    cuts: str = setting("", "Cuts of the evaluation utterances.")
    trials: str = setting("", "Trial list scored over the evaluation cuts.")
    p_targets: list[float] = setting(
        help="Target priors of the minDCF values reported.", default_factory=lambda: [0.01, 0.05]
    )


@dataclass
class PseudoLabelTrainConfig(RunConfig):
    """Running the fine-tuning stages: device, precision, seed, checkpoints, logging.

    The shared run keys (:class:`~dino_speech.config.sections.RunConfig`); the budget is per
    stage and the newest 2 checkpoints of each kind are kept.
    """

    precision: Literal["bf16", "fp32"] = setting(
        "bf16",
        "bf16 autocast on CUDA and on CPUs with native bf16 (AVX512-BF16 or AMX); the margin "
        "softmax always runs in float32.",
    )
    keep_last: int = setting(2, "Checkpoints of each kind kept (0 keeps all).")
    max_minutes: float | None = setting(
        None,
        "Wall-clock budget of EACH fine-tuning stage; when spent the stage stops cleanly "
        "(checkpoint + embedder.pt) and counts as done.",
    )
    fit_to_budget: bool = setting(
        True,
        "With max_minutes: the learning-rate schedule of each stage ends when its budget ends.",
    )
    sync_batchnorm: bool = setting(
        True,
        "Under DDP: the encoder's BatchNorm statistics over the global batch of all processes "
        "(see the DINO train.sync_batchnorm); no effect in one process or in a frozen stage.",
    )


@dataclass
class PseudoLabelConfig:
    """Iterative pseudo-labeling: cluster the embeddings, fine-tune on the clusters, repeat.

    One YAML file under ``configs/pseudo_label_*.yaml``; run by ``dino-speech pseudo-label
    run`` starting from a DINO experiment (:mod:`dino_speech.pseudo_label.loop`).
    """

    rounds: int = setting(2, "Rounds of cluster + fine-tune.")
    label_key: str = setting(
        "pseudo_speaker", "Where each cut's pseudo-speaker (int) is written in the cuts."
    )
    speaker_key: str = setting(
        "speaker",
        "True labels for the cluster quality report (NMI, purity), used when the cuts have them.",
    )
    min_clusters: int = setting(
        2, "Fewer clusters than this after the size filter is an error (nothing to learn from)."
    )
    round_overrides: dict[int, list[str]] = setting(
        help="Dotted overrides for single rounds, e.g. {2: [cluster.ahc_threshold=0.6]}: round "
        "2 clusters the fine-tuned embeddings with another threshold (hyperion ssl.v1 does).",
        default_factory=dict,
    )
    data: PseudoLabelDataConfig = field(default_factory=PseudoLabelDataConfig)
    embed: PseudoLabelEmbedConfig = field(default_factory=PseudoLabelEmbedConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    margin: MarginConfig = field(default_factory=MarginConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    eval: PseudoLabelEvalConfig = field(default_factory=PseudoLabelEvalConfig)
    train: PseudoLabelTrainConfig = field(default_factory=PseudoLabelTrainConfig)
