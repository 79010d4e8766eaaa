"""Iterative pseudo-labeling: embed → cluster → pseudo-labelled cuts → fine-tune → evaluate.

:func:`run_pseudo_label` starts from a trained model (a DINO experiment's ``embedder.pt``) and
runs ``rounds`` rounds; round ``r + 1`` starts from round ``r``'s model. Round 0 only evaluates
the initial model, so the report shows the DINO baseline next to every round. Layout of
``EXP``::

    config.yaml  pseudo_label.log  summary.json  embedder.pt (the last round's model)
    round0/eval/                       xvector.{ark,scp}, scores, metrics.json
    round1/train_emb/                  xvector.{ark,scp} of the training cuts (previous model)
    round1/cluster/                    labels (utt label, -1 = left out), quality.json
    round1/cuts_pseudo.jsonl.gz        kept cuts with custom[label_key] = pseudo-speaker
    round1/ft_frozen/, round1/ft_full/ fine-tuning stages (embedder.pt, classifier.pt, ...)
    round1/eval/                       as round0/eval, with round 1's model
    round2/...

Every stage is idempotent (:mod:`dino_speech.pseudo_label.stages`): when it finishes,
``.<name>.done`` is written beside its output holding a hash of what the stage depends on (its
config section and the stages before it). A rerun skips a stage whose marker matches; a
changed config (or a redone stage upstream) redoes it and everything after it. A fine-tuning
stage killed midway resumes from its last checkpoint; if its config has changed since, the
partial stage is removed and restarted. Settings that do not change the result (device,
workers, logging, checkpoint cadence, time budget) are not part of the hash.

Under ``torchrun`` every process runs the loop: embedding is sharded over the processes,
fine-tuning is data-parallel, clustering and scoring run on rank 0.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from dino_speech.config import PseudoLabelConfig, apply_overrides, save_config, to_dict
from dino_speech.errors import ConfigError, DataError
from dino_speech.file_io import atomic_path, atomic_write_text
from dino_speech.loading import resolve_model_path
from dino_speech.provenance import finished, request
from dino_speech.pseudo_label.report import collect_summary, format_summary
from dino_speech.pseudo_label.stages import (
    RoundPaths,
    StageRunner,
    copy_if_changed,
    file_digest,
    file_id,
    read_json,
    write_json,
)
from dino_speech.train.distributed import DistContext, init_distributed
from dino_speech.train.exp_lock import experiment_lock

if TYPE_CHECKING:
    from lhotse import CutSet

__all__ = [
    "STAGE_LOG",
    "collect_summary",
    "format_summary",
    "finished_rounds",
    "pseudo_labelled_cuts",
    "round_config",
    "run_pseudo_label",
]


STAGE_LOG = "pseudo_label.log"


def run_pseudo_label(
    cfg: PseudoLabelConfig,
    init: str | Path,
    exp_dir: str | Path,
    *,
    rounds: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run (or resume) ``rounds`` (default ``cfg.rounds``) pseudo-labeling rounds from
    ``init`` in ``exp_dir``; returns the summary also written to ``exp_dir/summary.json``."""
    rounds = cfg.rounds if rounds is None else rounds
    done = finished_rounds(cfg, init, exp_dir, rounds=rounds)
    if done is not None:
        return done
    _check(cfg, rounds)
    exp_dir = Path(exp_dir)
    init_path = resolve_model_path(init)
    ctx = init_distributed(cfg.train.device)
    try:
        with experiment_lock(exp_dir, ctx):
            return _run_rounds(cfg, init_path, exp_dir, rounds, ctx, progress)
    finally:
        ctx.close()


def finished_rounds(
    cfg: PseudoLabelConfig, init: str | Path, exp_dir: str | Path, *, rounds: int | None = None
) -> dict[str, Any] | None:
    """The saved summary of a run in ``exp_dir`` that finished this same request (config,
    rounds, init model file and manifests unchanged, its model still there), or None."""
    rounds = cfg.rounds if rounds is None else rounds
    exp_dir = Path(exp_dir)
    made_from = _request(cfg, resolve_model_path(init), rounds)
    outputs = [exp_dir / "embedder.pt"] if rounds > 0 else []
    return finished(exp_dir / "summary.json", made_from, outputs)


def _request(cfg: PseudoLabelConfig, init_path: Path, rounds: int) -> dict[str, Any]:
    files = [cfg.data.train_cuts, cfg.eval.cuts, cfg.eval.trials]
    return request(
        {"config": to_dict(cfg), "rounds": rounds},
        [init_path, *(f for f in files if f and Path(f).is_file())],
    )


def _run_rounds(
    cfg: PseudoLabelConfig,
    init_path: Path,
    exp_dir: Path,
    rounds: int,
    ctx: DistContext,
    progress: bool,
) -> dict[str, Any]:
    log: TextIO | None = None
    started = time.monotonic()
    previous = read_json(exp_dir / "summary.json") or {}
    try:
        if ctx.is_main:
            exp_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, exp_dir / "config.yaml")
            log = open(exp_dir / STAGE_LOG, "a", buffering=1)  # noqa: SIM115 - closed below
        stages = StageRunner(ctx, log)
        model, token = init_path, f"init:{file_digest(init_path)}"
        _Round(cfg, exp_dir, stages, ctx, progress).evaluate(0, model, token)
        for r in range(1, rounds + 1):
            runner = _Round(round_config(cfg, r), exp_dir, stages, ctx, progress)
            model, token = runner.run_round(r, model, token)
        summary = collect_summary(exp_dir, init_path, rounds)
        # wall time of the call that last ran a stage (a rerun that runs none keeps it)
        elapsed = round(time.monotonic() - started, 1)
        summary["seconds"] = elapsed if stages.ran else previous.get("seconds")
        summary["made_from"] = _request(cfg, init_path, rounds)
        if ctx.is_main:
            write_json(exp_dir / "summary.json", summary)
            if rounds > 0:
                copy_if_changed(model, exp_dir / "embedder.pt")
            stages.note(f"{len(stages.ran)} stage(s) run: {', '.join(stages.ran) or 'none'}")
        return summary
    finally:
        if log is not None:
            log.close()


def round_config(cfg: PseudoLabelConfig, r: int) -> PseudoLabelConfig:
    """``cfg`` with ``cfg.round_overrides[r]`` applied (the config round ``r`` runs with)."""
    overrides = cfg.round_overrides.get(r, [])
    if not overrides:
        return cfg
    try:
        return apply_overrides(cfg, overrides)
    except ConfigError as exc:
        raise ConfigError(f"round_overrides[{r}]: {exc}") from None


class _Round:
    """The stages of one round, given the model it starts from."""

    def __init__(
        self,
        cfg: PseudoLabelConfig,
        exp_dir: Path,
        stages: StageRunner,
        ctx: DistContext,
        progress: bool,
    ) -> None:
        self.cfg, self.exp_dir, self.stages, self.ctx = cfg, exp_dir, stages, ctx
        self.progress = progress and ctx.is_main

    def run_round(self, r: int, model: Path, token: str) -> tuple[Path, str]:
        """Round ``r`` from ``model`` (identified by ``token``); returns its model and token."""
        cfg, paths = self.cfg, RoundPaths.of(self.exp_dir, r)
        train_cuts = file_id(cfg.data.train_cuts)
        key = {"model": token, "cuts": train_cuts, "min_duration": cfg.data.min_duration}
        key.update(chunk_seconds=cfg.embed.chunk_seconds, precision=cfg.train.precision)
        emb = self.stages.run(
            f"round {r} train_emb",
            paths.train_emb,
            key,
            lambda: self._embed(model, self._train_cuts(), paths.train_emb, skip_bad=True),
        )
        clusters = self.stages.run(
            f"round {r} cluster",
            paths.cluster,
            {"emb": emb, "cluster": to_dict(cfg.cluster), "min_clusters": cfg.min_clusters},
            lambda: self._cluster(r, paths),
        )
        cuts = self.stages.run(
            f"round {r} cuts",
            paths.cuts,
            {"clusters": clusters, "label_key": cfg.label_key},
            lambda: self._write_pseudo_cuts(paths),
        )
        ft_key = {
            "cuts": cuts,
            "model": token,
            "margin": to_dict(cfg.margin),
            "augment": to_dict(cfg.data.augment),
            "noise": [file_id(cfg.data.musan_cuts), file_id(cfg.data.rir_cuts)],
            "batch_size": cfg.data.batch_size,
            "seed": cfg.train.seed,
            "precision": cfg.train.precision,
        }
        current, classifier = model, None
        for stage, out, epochs in (
            ("frozen", paths.ft_frozen, cfg.finetune.frozen_epochs),
            ("full", paths.ft_full, cfg.finetune.full_epochs),
        ):
            if epochs == 0:
                continue
            other = "full" if stage == "frozen" else "frozen"
            settings = {k: v for k, v in to_dict(cfg.finetune).items() if not k.startswith(other)}
            ft_key = {**ft_key, "stage": stage, "previous": token, "finetune": settings}
            token = self.stages.run(
                f"round {r} ft_{stage}",
                out,
                ft_key,
                lambda s=stage, o=out, m=current, c=classifier: self._finetune(s, paths, m, o, c),
            )
            current, classifier = out / "embedder.pt", out / "classifier.pt"
        self.evaluate(r, current, token)
        return current, token

    # ------------------------------------------------------------------ stages

    def evaluate(self, r: int, model: Path, token: str) -> None:
        ev = self.cfg.eval
        if not ev.cuts:
            return
        out = RoundPaths.of(self.exp_dir, r).eval
        key = {
            "model": token,
            "cuts": file_id(ev.cuts),
            "trials": file_id(ev.trials),
            "p_targets": list(ev.p_targets),
            "chunk_seconds": self.cfg.embed.chunk_seconds,
            "precision": self.cfg.train.precision,
        }
        self.stages.run(f"round {r} eval", out, key, lambda: self._evaluate(r, model, out))

    def _evaluate(self, r: int, model: Path, out: Path) -> None:
        from dino_speech.data.manifests import load_cuts
        from dino_speech.embedding_io import read_embeddings
        from dino_speech.eval.verification import (
            read_trials,
            score_trials,
            verification_metrics,
            write_scores,
        )

        ev = self.cfg.eval
        trials = read_trials(ev.trials)  # fail before embedding on a bad trial list
        scp = self._embed(model, load_cuts(ev.cuts), out, skip_bad=False)
        if not self.ctx.is_main:
            return
        ids, X = read_embeddings(scp)
        scores = score_trials((ids, X), trials)
        write_scores(out / "scores", trials, scores)
        metrics = verification_metrics(scores, trials.labels, ev.p_targets)
        metrics["model"] = str(model)
        write_json(out / "metrics.json", metrics)
        dcf = ", ".join(f"minDCF({p}) {v:.4f}" for p, v in metrics["min_dcf"].items())
        self.stages.note(f"round {r} eval: EER {metrics['eer']:.2f}%, {dcf}")

    def _train_cuts(self) -> Any:
        from dino_speech.data.manifests import filter_min_duration, load_cuts

        cuts = filter_min_duration(load_cuts(self.cfg.data.train_cuts), self.cfg.data.min_duration)
        if len(cuts) == 0:
            raise DataError(
                f"no training cuts of at least data.min_duration={self.cfg.data.min_duration} s"
            )
        return cuts

    def _embed(self, model: Path, cuts: Any, out: Path, *, skip_bad: bool) -> Path:
        from dino_speech.embedder import Embedder
        from dino_speech.extract import extract_embeddings, extract_under_torchrun

        ec = self.cfg.embed
        embedder = Embedder.from_pretrained(
            model,
            device=self.ctx.device,
            chunk_seconds=ec.chunk_seconds,
            precision=self.cfg.train.precision,
        )
        items = [(cut.id, cut) for cut in cuts]
        kwargs = {
            "batch_size": ec.batch_size,
            "num_workers": ec.num_workers,
            "skip_bad": skip_bad,
            "progress": self.progress,
        }
        if self.ctx.distributed:
            extract_under_torchrun(
                embedder, items, out, self.ctx.rank, self.ctx.world_size, **kwargs
            )
        else:
            extract_embeddings(embedder, items, out, **kwargs)
        return out / "xvector.scp"

    def _cluster(self, r: int, paths: RoundPaths) -> None:
        if not self.ctx.is_main:
            return
        from dino_speech.embedding_io import read_embeddings
        from dino_speech.pseudo_label.cluster import cluster_embeddings
        from dino_speech.pseudo_label.quality import cluster_quality, format_quality

        cfg = self.cfg
        ids, X = read_embeddings(paths.train_emb / "xvector.scp")
        truth = self._true_speakers(ids)
        if cfg.cluster.method == "oracle":
            labels = self._oracle_labels(truth)
        else:
            sessions = None
            if cfg.cluster.aggregate == "session":
                sessions = self._cut_labels(ids, cfg.cluster.session_key)
            labels = cluster_embeddings(X, cfg.cluster, sessions=sessions, progress=self.progress)
        kept = labels >= 0
        count = int(np.unique(labels[kept]).size)
        if count < cfg.min_clusters:
            raise ConfigError(
                f"round {r}: the clustering kept {count} cluster(s) ({int(kept.sum())} of "
                f"{len(ids)} utterances); fine-tuning needs at least {cfg.min_clusters} "
                "(min_clusters). Keep more clusters: raise cluster.ahc_threshold (merge less), "
                "lower cluster.min_size, raise cluster.max_size or set cluster.oversize="
                "subsample, or use cluster.method=kmeans with cluster.num_clusters=K"
            )
        out = paths.cluster
        out.mkdir(parents=True, exist_ok=True)
        text = "".join(f"{u} {int(c)}\n" for u, c in zip(ids, labels, strict=True))
        atomic_write_text(out / "labels", text)
        report: dict[str, Any] = {
            "method": cfg.cluster.method,
            "clusters": count,
            "kept": int(kept.sum()),
            "utterances": len(ids),
            "coverage": float(kept.mean()),
        }
        if truth is not None:
            known = [i for i, s in enumerate(truth) if s is not None]
            report = cluster_quality(labels[known], [truth[i] for i in known])
            report["method"] = cfg.cluster.method
            report["scored_utterances"] = len(known)
            self.stages.note(f"round {r} cluster: {format_quality(report)}")
        else:
            self.stages.note(f"round {r} cluster: {count} clusters, no true speakers to score")
        write_json(out / "quality.json", report)

    def _oracle_labels(self, truth: list[str | None] | None) -> np.ndarray:
        """The true speakers as cluster labels (-1 where unknown), size-filtered."""
        from dino_speech.pseudo_label.cluster import filter_cluster_sizes

        if truth is None:
            raise ConfigError(
                f"cluster.method=oracle needs true speakers: no training cut has "
                f"custom['{self.cfg.speaker_key}'] (speaker_key)"
            )
        index = {s: i for i, s in enumerate(sorted({t for t in truth if t is not None}))}
        raw = np.array([-1 if t is None else index[t] for t in truth], dtype=np.int64)
        c = self.cfg.cluster
        return filter_cluster_sizes(raw, c.min_size, c.max_size, c.oversize, c.seed)

    def _true_speakers(self, ids: list[str]) -> list[str | None] | None:
        truth = self._cut_labels(ids, self.cfg.speaker_key)
        return truth if any(t is not None for t in truth) else None

    def _cut_labels(self, ids: list[str], key: str) -> list[str | None]:
        """``custom[key]`` of the training cut of each id (None where it has none)."""
        from dino_speech.data.manifests import cut_label, load_cuts

        by_id = {c.id: cut_label(c, key) for c in load_cuts(self.cfg.data.train_cuts)}
        return [by_id.get(u) for u in ids]

    def _write_pseudo_cuts(self, paths: RoundPaths) -> None:
        if not self.ctx.is_main:
            return
        from dino_speech.data.manifests import read_kaldi_list

        labels = {u: int(v) for u, v in read_kaldi_list(paths.cluster / "labels").items()}
        kept = pseudo_labelled_cuts(self._train_cuts(), labels, self.cfg.label_key)
        with atomic_path(paths.cuts, suffix=".jsonl.gz") as tmp:
            kept.to_file(tmp)
        self.stages.note(f"wrote {len(kept)} pseudo-labelled cuts to {paths.cuts}")

    def _finetune(
        self, stage: str, paths: RoundPaths, model: Path, out: Path, classifier: Path | None
    ) -> None:
        from dino_speech.pseudo_label.finetune import finetune_stage

        result = finetune_stage(
            self.cfg,
            stage,  # type: ignore[arg-type]
            paths.cuts,
            model,
            out,
            classifier_init=classifier,
            progress=self.progress,
            dist_ctx=self.ctx,
        )
        if self.ctx.is_main:
            write_json(out / "result.json", result.to_dict())
            self.stages.note(result.summary())


def pseudo_labelled_cuts(cuts: Iterable[Any], labels: Mapping[str, int], key: str) -> CutSet:
    """The cuts with a cluster (``labels[cut.id] >= 0``), with ``custom[key]`` set to it;
    cuts left out by the clustering (-1) or without an embedding are dropped."""
    from lhotse import CutSet

    return CutSet.from_cuts(
        c.with_custom(key, int(labels[c.id])) for c in cuts if labels.get(c.id, -1) >= 0
    )


# --------------------------------------------------------------------------- helpers


def _check(cfg: PseudoLabelConfig, rounds: int) -> None:
    if rounds < 0:
        raise ConfigError(f"rounds must be >= 0, got {rounds}")
    if rounds > 0 and not cfg.data.train_cuts:
        raise ConfigError("data.train_cuts is empty: set it to the cuts to pseudo-label")
    if bool(cfg.eval.cuts) != bool(cfg.eval.trials):
        raise ConfigError("set both eval.cuts and eval.trials (or neither, to skip evaluation)")
    if cfg.min_clusters < 2:
        raise ConfigError(f"min_clusters must be >= 2, got {cfg.min_clusters}")
    if cfg.finetune.frozen_epochs < 0 or cfg.finetune.full_epochs < 0:
        raise ConfigError("finetune.frozen_epochs and full_epochs must be >= 0")
    if rounds > 0 and cfg.finetune.frozen_epochs + cfg.finetune.full_epochs == 0:
        raise ConfigError("finetune.frozen_epochs and full_epochs are both 0: nothing to train")
    for r, overrides in cfg.round_overrides.items():
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise ConfigError(f"round_overrides: keys must be round numbers >= 1, got {r!r}")
        if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
            raise ConfigError(f"round_overrides[{r}] must be a list of 'key=value' strings")
        if any(o.split("=", 1)[0].strip() == "round_overrides" for o in overrides):
            raise ConfigError(f"round_overrides[{r}] cannot set round_overrides")
        round_config(cfg, r)
    if not cfg.label_key:
        raise ConfigError("label_key must not be empty")
    for name in ("train_cuts", "musan_cuts", "rir_cuts"):
        value = getattr(cfg.data, name)
        if value and not Path(value).is_file():
            raise DataError(f"data.{name}: file not found: {value}")
    for name in ("cuts", "trials"):
        value = getattr(cfg.eval, name)
        if value and not Path(value).is_file():
            raise DataError(f"eval.{name}: file not found: {value}")
