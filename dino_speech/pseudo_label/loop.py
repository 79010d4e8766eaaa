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

Every stage is idempotent: when it finishes, ``.<name>.done`` is written beside its output
holding a hash of what the stage depends on (its config section and the stages before it).
A rerun skips a stage whose marker matches; a changed config (or a redone stage upstream)
redoes it and everything after it. A fine-tuning stage killed midway resumes from its last
checkpoint (``.<name>.started`` holds the hash its checkpoints belong to; if the config has
changed since, the partial stage is removed and restarted). Settings that do not change the
result (device, workers, logging, checkpoint cadence, time budget) are not part of the hash.

Under ``torchrun`` every process runs the loop: embedding is sharded over the processes,
fine-tuning is data-parallel, clustering and scoring run on rank 0.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from dino_speech.config import PseudoLabelConfig, save_config, to_dict
from dino_speech.errors import ConfigError, DataError
from dino_speech.models.package import resolve_model_path
from dino_speech.train.distributed import DistContext, all_gather_objects, init_distributed

if TYPE_CHECKING:
    from lhotse import CutSet

__all__ = [
    "RoundPaths",
    "collect_summary",
    "format_summary",
    "pseudo_labelled_cuts",
    "run_pseudo_label",
]

logger = logging.getLogger(__name__)

STAGE_LOG = "pseudo_label.log"


@dataclass(frozen=True)
class RoundPaths:
    """Where round ``r``'s stages write (see the module docstring)."""

    root: Path

    @classmethod
    def of(cls, exp_dir: Path, r: int) -> RoundPaths:
        return cls(exp_dir / f"round{r}")

    @property
    def train_emb(self) -> Path:
        return self.root / "train_emb"

    @property
    def cluster(self) -> Path:
        return self.root / "cluster"

    @property
    def cuts(self) -> Path:
        return self.root / "cuts_pseudo.jsonl.gz"

    @property
    def ft_frozen(self) -> Path:
        return self.root / "ft_frozen"

    @property
    def ft_full(self) -> Path:
        return self.root / "ft_full"

    @property
    def eval(self) -> Path:
        return self.root / "eval"


@dataclass
class _Stages:
    """Runs stages once: ``.NAME.done`` markers, the stage log, rank-0 decisions."""

    exp_dir: Path
    ctx: DistContext
    log: TextIO | None
    ran: list[str] = field(default_factory=list)

    def run(self, label: str, output: Path, key: dict[str, Any], fn: Callable[[], Any]) -> str:
        """Run ``fn`` unless ``output`` is done with this ``key``; returns the stage's token
        (changes whenever the stage is redone, so stages after it are redone too)."""
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
        done = output.parent / f".{output.name}.done"
        started = output.parent / f".{output.name}.started"
        record = _read_json(done)
        skip = record is not None and record.get("hash") == digest and output.exists()
        # rank 0 decides for everyone
        skip, token = all_gather_objects((skip, record["token"] if skip and record else None))[0]
        if skip:
            self._note(f"{label}: done already, skipped")
            return str(token)
        if self.ctx.is_main:
            previous = _read_json(started)
            stale = record is not None or (previous is not None and previous["hash"] != digest)
            if stale and output.exists():
                self._note(f"{label}: its inputs or config changed; removing {output}")
                shutil.rmtree(output) if output.is_dir() else output.unlink()
            done.unlink(missing_ok=True)
            output.parent.mkdir(parents=True, exist_ok=True)
            _write_json(started, {"hash": digest})
        _barrier(self.ctx)
        self._note(f"{label}: running")
        begin = time.monotonic()
        fn()
        _barrier(self.ctx)
        token = str(all_gather_objects(uuid.uuid4().hex)[0])
        if self.ctx.is_main:
            _write_json(done, {"hash": digest, "token": token, "finished": time.ctime()})
            started.unlink(missing_ok=True)
        self._note(f"{label}: finished in {time.monotonic() - begin:.1f} s")
        self.ran.append(label)
        return token

    def _note(self, message: str) -> None:
        logger.info(message)
        if self.log is not None:
            self.log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")
            self.log.flush()


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
    _check(cfg, rounds)
    exp_dir = Path(exp_dir)
    init_path = resolve_model_path(init)
    ctx = init_distributed(cfg.train.device)
    log: TextIO | None = None
    try:
        if ctx.is_main:
            exp_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, exp_dir / "config.yaml")
            log = open(exp_dir / STAGE_LOG, "a", buffering=1)  # noqa: SIM115 - closed below
        stages = _Stages(exp_dir, ctx, log)
        runner = _Round(cfg, exp_dir, stages, ctx, progress)
        model, token = init_path, f"init:{_file_digest(init_path)}"
        runner.evaluate(0, model, token)
        for r in range(1, rounds + 1):
            model, token = runner.run_round(r, model, token)
        summary = collect_summary(exp_dir, init_path, rounds)
        if ctx.is_main:
            _write_json(exp_dir / "summary.json", summary)
            if rounds > 0:
                _copy_if_changed(model, exp_dir / "embedder.pt")
            stages._note(f"{len(stages.ran)} stage(s) run: {', '.join(stages.ran) or 'none'}")
        return summary
    finally:
        if log is not None:
            log.close()
        ctx.close()


class _Round:
    """The stages of one round, given the model it starts from."""

    def __init__(
        self,
        cfg: PseudoLabelConfig,
        exp_dir: Path,
        stages: _Stages,
        ctx: DistContext,
        progress: bool,
    ) -> None:
        self.cfg, self.exp_dir, self.stages, self.ctx = cfg, exp_dir, stages, ctx
        self.progress = progress and ctx.is_main

    def run_round(self, r: int, model: Path, token: str) -> tuple[Path, str]:
        """Round ``r`` from ``model`` (identified by ``token``); returns its model and token."""
        cfg, paths = self.cfg, RoundPaths.of(self.exp_dir, r)
        train_cuts = _file_id(cfg.data.train_cuts)
        key = {"model": token, "cuts": train_cuts, "min_duration": cfg.data.min_duration}
        key["chunk_seconds"] = cfg.embed.chunk_seconds
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
            "noise": [_file_id(cfg.data.musan_cuts), _file_id(cfg.data.rir_cuts)],
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
            "cuts": _file_id(ev.cuts),
            "trials": _file_id(ev.trials),
            "p_targets": list(ev.p_targets),
            "chunk_seconds": self.cfg.embed.chunk_seconds,
        }
        self.stages.run(f"round {r} eval", out, key, lambda: self._evaluate(r, model, out))

    def _evaluate(self, r: int, model: Path, out: Path) -> None:
        from dino_speech.data.manifests import load_cuts
        from dino_speech.embeddings import read_embeddings
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
        _write_json(out / "metrics.json", metrics)
        dcf = ", ".join(f"minDCF({p}) {v:.4f}" for p, v in metrics["min_dcf"].items())
        self.stages._note(f"round {r} eval: EER {metrics['eer']:.2f}%, {dcf}")

    def _train_cuts(self) -> Any:
        from dino_speech.data.manifests import filter_min_duration, load_cuts

        cuts = filter_min_duration(load_cuts(self.cfg.data.train_cuts), self.cfg.data.min_duration)
        if len(cuts) == 0:
            raise DataError(
                f"no training cuts of at least data.min_duration={self.cfg.data.min_duration} s"
            )
        return cuts

    def _embed(self, model: Path, cuts: Any, out: Path, *, skip_bad: bool) -> Path:
        from dino_speech.api import Embedder
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
        from dino_speech.embeddings import read_embeddings
        from dino_speech.pseudo_label.cluster import cluster_embeddings
        from dino_speech.pseudo_label.quality import cluster_quality, format_quality

        cfg = self.cfg
        ids, X = read_embeddings(paths.train_emb / "xvector.scp")
        labels = cluster_embeddings(X, cfg.cluster, progress=self.progress)
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
        _atomic_write(out / "labels", text)
        report: dict[str, Any] = {
            "clusters": count,
            "kept": int(kept.sum()),
            "utterances": len(ids),
            "coverage": float(kept.mean()),
        }
        truth = self._true_speakers(ids)
        if truth is not None:
            known = [i for i, s in enumerate(truth) if s is not None]
            report = cluster_quality(labels[known], [truth[i] for i in known])
            report["scored_utterances"] = len(known)
            self.stages._note(f"round {r} cluster: {format_quality(report)}")
        else:
            self.stages._note(f"round {r} cluster: {count} clusters, no true speakers to score")
        _write_json(out / "quality.json", report)

    def _true_speakers(self, ids: list[str]) -> list[str | None] | None:
        from dino_speech.data.manifests import cut_label, load_cuts

        by_id = {
            c.id: cut_label(c, self.cfg.speaker_key) for c in load_cuts(self.cfg.data.train_cuts)
        }
        truth = [by_id.get(u) for u in ids]
        return truth if any(t is not None for t in truth) else None

    def _write_pseudo_cuts(self, paths: RoundPaths) -> None:
        if not self.ctx.is_main:
            return
        from dino_speech.data.manifests import read_kaldi_list

        labels = {u: int(v) for u, v in read_kaldi_list(paths.cluster / "labels").items()}
        kept = pseudo_labelled_cuts(self._train_cuts(), labels, self.cfg.label_key)
        tmp = paths.cuts.with_name(f".tmp.{paths.cuts.name}")
        kept.to_file(tmp)
        os.replace(tmp, paths.cuts)
        self.stages._note(f"wrote {len(kept)} pseudo-labelled cuts to {paths.cuts}")

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
            _write_json(out / "result.json", result.to_dict())
            self.stages._note(result.summary())


def pseudo_labelled_cuts(cuts: Iterable[Any], labels: Mapping[str, int], key: str) -> CutSet:
    """The cuts with a cluster (``labels[cut.id] >= 0``), with ``custom[key]`` set to it;
    cuts left out by the clustering (-1) or without an embedding are dropped."""
    from lhotse import CutSet

    return CutSet.from_cuts(
        c.with_custom(key, int(labels[c.id])) for c in cuts if labels.get(c.id, -1) >= 0
    )


# --------------------------------------------------------------------------- the report


def collect_summary(exp_dir: Path, init: Path, rounds: int) -> dict[str, Any]:
    """The per-round results found in ``exp_dir`` (EER/minDCF, cluster quality, fine-tuning)."""
    rows = []
    for r in range(rounds + 1):
        paths = RoundPaths.of(exp_dir, r)
        row: dict[str, Any] = {"round": r, "model": str(init) if r == 0 else None}
        metrics = _read_json(paths.eval / "metrics.json")
        row["eval"] = metrics
        if metrics is not None:
            row["model"] = metrics.get("model")
        if r > 0:
            row["cluster"] = _read_json(paths.cluster / "quality.json")
            row["finetune"] = {
                stage: _read_json(out / "result.json")
                for stage, out in (("frozen", paths.ft_frozen), ("full", paths.ft_full))
                if (out / "result.json").is_file()
            }
            model = paths.ft_full / "embedder.pt"
            if not model.is_file():
                model = paths.ft_frozen / "embedder.pt"
            row["model"] = str(model)
        rows.append(row)
    return {"init": str(init), "exp_dir": str(exp_dir), "rounds": rows}


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a table: one row per round (round 0 = the initial model)."""
    header = (
        f"{'round':<6}{'EER %':>8}{'minDCF':>9}{'clusters':>10}{'kept %':>8}"
        f"{'NMI':>8}{'purity':>8}{'train acc %':>13}  model"
    )
    lines = [header, "-" * len(header)]
    for row in summary["rounds"]:
        ev = row.get("eval") or {}
        dcf = ev.get("min_dcf") or {}
        first_dcf = next(iter(dcf.values()), None)
        cl = row.get("cluster") or {}
        ft = (row.get("finetune") or {}).get("full") or (row.get("finetune") or {}).get("frozen")
        acc = None if not ft or ft.get("accuracy") is None else 100 * ft["accuracy"]
        name = "init" if row["round"] == 0 else f"round{row['round']}"
        lines.append(
            f"{name:<6}{_fmt(ev.get('eer'), '.2f'):>8}{_fmt(first_dcf, '.4f'):>9}"
            f"{_fmt(cl.get('clusters'), 'd'):>10}"
            f"{_fmt(None if 'coverage' not in cl else 100 * cl['coverage'], '.1f'):>8}"
            f"{_fmt(cl.get('nmi'), '.4f'):>8}{_fmt(cl.get('purity'), '.4f'):>8}"
            f"{_fmt(acc, '.1f'):>13}  {row.get('model') or '-'}"
        )
    if any((r.get("eval") or {}).get("min_dcf") for r in summary["rounds"]):
        p = next(iter((summary["rounds"][0].get("eval") or {}).get("min_dcf", {"?": 0})))
        lines.append(f"minDCF at p_target={p}; NMI/purity of the clusters fine-tuned on")
    return "\n".join(lines)


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    return format(value, spec)


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


def _barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        import torch.distributed as dist

        dist.barrier()


def _file_id(path: str | None) -> list[Any] | None:
    """A file's identity for stage hashes: absolute path, size and modification time."""
    if not path:
        return None
    p = Path(path).resolve()
    st = p.stat()
    return [str(p), st.st_size, st.st_mtime_ns]


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _copy_if_changed(src: Path, dst: Path) -> None:
    if dst.is_file() and _file_digest(dst) == _file_digest(src):
        return
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    _atomic_write(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
