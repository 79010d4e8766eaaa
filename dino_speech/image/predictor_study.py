"""The prediction-head study: which features does a non-contrastive learner pick up?

A runnable version of the setting of Wen & Li, *The Mechanism of Prediction Head in
Non-contrastive Self-supervised Learning* (NeurIPS 2022). Their claim: with a linear predictor
initialised to the identity and only its off-diagonal entries trainable, a network learns the weak
features as well as the strong ones (the "substitution" and "acceleration" effects), while
without a trainable predictor the neurons all drift to the strong features (dimensional
collapse), even though collapsed optima exist in every variant.

Data model (``K = num_strong + num_weak`` features in ``input_dim`` dimensions)::

    x = sum_j z_j s_j e_j + sigma * xi,   z_j in {-1, 0, +1}, P(z_j != 0) = presence

with ``e_j`` orthonormal (a random rotation fixed by the seed), ``s_j = strong`` for the first
``num_strong`` features and ``weak`` for the rest, ``xi ~ N(0, I)``. Each view keeps every
feature independently with probability ``keep`` (random feature masking) and draws its own noise.

Network: ``f(x) = ReLU(W x)`` with ``width`` neurons, L2-normalised in the loss (the
normalisation). Loss ``-cos(P f(x1), stopgrad f(x2))``, symmetrised. Variants:

* ``none``: no predictor and no stop-gradient (no asymmetry at all).
* ``identity``: fixed identity predictor with stop-gradient (the same as stop-gradient alone).
* ``offdiag``: identity-initialised ``P`` with only its off-diagonal entries trainable.
* ``linear``: identity-initialised, fully trainable ``P``.
* ``directpred``: ``P`` set from the eigen-decomposition of the running correlation of ``f``.

Training: plain SGD from a small random initialisation (as in the feature-learning analyses),
a fresh batch from the data model every step; for a given seed every variant starts from the same
weights and sees the same batches.

Measures, on fresh unmasked inputs from the data model:

* *aligned*: some neuron's weight points along the feature, ``max_i |cos(w_i, e_j)| >=
  align_threshold`` (0.8: above the 0.71 of a neuron split evenly between two features; a random
  direction in 64 dimensions has about 0.1) -- Wen & Li's "neuron i learns feature j".
* *decodable*: a linear readout of ``z_j`` from the L2-normalised representation reaches
  ``R^2 >= decode_threshold`` (0.5): the feature is in the representation, in whatever basis.
* effective rank of the L2-normalised representations (see :mod:`dino_speech.image.evaluate`).
"""

from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from dino_speech.errors import ConfigError
from dino_speech.image.evaluate import effective_rank
from dino_speech.image.heads import (
    DirectPredPredictor,
    IdentityPredictor,
    LinearPredictor,
    OffDiagIdentityPredictor,
)
from dino_speech.image.study_config import VARIANTS, StudyConfig

__all__ = ["VARIANTS", "FeatureModel", "StudyConfig", "format_study_table", "run_study"]


class FeatureModel:
    """The generative model: sparse signed features of two strengths on orthonormal directions."""

    def __init__(self, cfg: StudyConfig, seed: int) -> None:
        self.cfg = cfg
        gen = torch.Generator().manual_seed(10_000 + seed)
        q, _ = torch.linalg.qr(torch.randn(cfg.input_dim, cfg.input_dim, generator=gen))
        self.directions = q[:, : cfg.num_features].T.contiguous()  # (K, n), orthonormal rows
        self.strengths = torch.tensor(
            [cfg.strong] * cfg.num_strong + [cfg.weak] * cfg.num_weak
        )  # (K,)

    def latents(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """``z`` (n, K) in {-1, 0, +1}."""
        present = torch.rand(n, self.cfg.num_features, generator=gen) < self.cfg.presence
        sign = torch.randint(0, 2, (n, self.cfg.num_features), generator=gen) * 2 - 1
        return present * sign

    def render(self, z: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        """Inputs ``x`` (n, input_dim) from latents (n, K); fresh noise unless ``gen`` is None."""
        x = (z * self.strengths) @ self.directions
        if gen is not None and self.cfg.noise > 0:
            x = x + self.cfg.noise * torch.randn(x.shape, generator=gen)
        return x

    def views(self, z: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Two augmented views: independent feature masks (keep prob ``keep``) and noise."""

        def one() -> torch.Tensor:
            mask = torch.rand(z.shape, generator=gen) < self.cfg.keep
            return self.render(z * mask, gen)

        return one(), one()


def build_study_predictor(variant: str, width: int) -> nn.Module:
    if variant in ("none", "identity"):
        return IdentityPredictor()
    if variant == "offdiag":
        return OffDiagIdentityPredictor(width)
    if variant == "linear":
        return LinearPredictor(width, identity_init=True)
    if variant == "directpred":
        return DirectPredPredictor(width)
    raise ConfigError(f"unknown variant '{variant}'; valid variants: {', '.join(VARIANTS)}")


def alignment(weight: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """``|cos(w_i, e_j)|`` as a (width, K) matrix."""
    w = F.normalize(weight, dim=1)
    return (w @ directions.T).abs()


def decodability(reps: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """R^2 of the least-squares linear readout (with intercept) of each ``z_j`` from ``reps``.

    Shapes: ``reps`` (N, width), ``z`` (N, K) -> (K,).
    """
    design = torch.cat([reps, torch.ones(len(reps), 1)], dim=1).double()
    target = z.double()
    coef = torch.linalg.lstsq(design, target).solution
    resid = target - design @ coef
    total = (target - target.mean(0)).pow(2).sum(0).clamp(min=1e-12)
    return (1.0 - resid.pow(2).sum(0) / total).float()


def measure(
    cfg: StudyConfig, model: FeatureModel, weight: torch.Tensor, gen: torch.Generator
) -> dict[str, float]:
    """Learnt-feature counts (aligned / decodable, strong and weak) and effective rank."""
    with torch.no_grad():
        z = model.latents(cfg.num_test, gen)
        reps = F.normalize(torch.relu(model.render(z, gen) @ weight.T), dim=1)
        aligned = alignment(weight, model.directions).max(dim=0).values >= cfg.align_threshold
        decoded = decodability(reps, z.float()) >= cfg.decode_threshold
    s = cfg.num_strong
    return {
        "strong": int(aligned[:s].sum()),
        "weak": int(aligned[s:].sum()),
        "strong_dec": int(decoded[:s].sum()),
        "weak_dec": int(decoded[s:].sum()),
        "eff_rank": effective_rank(reps.numpy()),
    }


def run_variant(cfg: StudyConfig, variant: str, seed: int) -> dict[str, float | str]:
    """Train one variant with one seed; the measures before (``init_*``) and after training.

    For a given seed every variant starts from the same weights and sees the same batches.
    """
    model = FeatureModel(cfg, seed)
    gen = torch.Generator().manual_seed(seed)
    weight = nn.Parameter(
        cfg.init_scale * torch.randn(cfg.width, cfg.input_dim, generator=gen) / cfg.input_dim**0.5
    )
    predictor = build_study_predictor(variant, cfg.width)
    opt = torch.optim.SGD([weight, *predictor.parameters()], lr=cfg.lr)
    eval_gen = torch.Generator().manual_seed(20_000 + seed)
    init = measure(cfg, model, weight.detach(), eval_gen)
    stop_grad = variant != "none"
    tail: list[float] = []
    for step in range(cfg.steps):
        z = model.latents(cfg.batch_size, gen)
        x1, x2 = model.views(z, gen)
        f = torch.relu(torch.cat([x1, x2]) @ weight.T)
        p1, p2 = predictor(f).chunk(2)
        f1, f2 = f.chunk(2)
        if stop_grad:
            f1, f2 = f1.detach(), f2.detach()
        loss = -0.5 * (
            F.cosine_similarity(p1, f2, dim=1, eps=1e-8).mean()
            + F.cosine_similarity(p2, f1, dim=1, eps=1e-8).mean()
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step >= cfg.steps - max(1, cfg.steps // 10):
            tail.append(float(loss.detach()))
    eval_gen.manual_seed(20_000 + seed)
    final = measure(cfg, model, weight.detach(), eval_gen)
    return {
        "variant": variant,
        "seed": seed,
        **final,
        "final_loss": sum(tail) / len(tail),
        **{f"init_{k}": v for k, v in init.items()},
    }


def run_study(cfg: StudyConfig, *, progress: bool = True) -> list[dict[str, float | str]]:
    """Every variant x seed; one row per run."""
    cfg.check()
    runs = [(v, s) for v in cfg.variants for s in cfg.seeds]
    rows = []
    for variant, seed in tqdm(runs, desc="predictor study", disable=not progress):
        rows.append(run_variant(cfg, variant, seed))
    return rows


def _mean_sd(values: list[float], fmt: str) -> str:
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:{fmt}} ± {sd:{fmt}}"


def format_study_table(cfg: StudyConfig, rows: list[dict[str, float | str]]) -> str:
    """A markdown table: per variant, mean ± sd over seeds, and the per-seed aligned counts."""
    n_s, n_w = cfg.num_strong, cfg.num_weak
    header = (
        f"Features: {n_s} strong (s={cfg.strong}) + {n_w} weak (s={cfg.weak}) in "
        f"{cfg.input_dim} dims; {cfg.width} ReLU neurons, L2-normalised output; {cfg.steps} SGD "
        f"steps, lr {cfg.lr}; seeds {', '.join(map(str, cfg.seeds))}.\n"
        f"aligned: some neuron has |cos(w_i, e_j)| >= {cfg.align_threshold}; decodable: linear "
        f"readout R^2 >= {cfg.decode_threshold} from the normalised representation; eff. rank "
        f"of the normalised test representations (at most {cfg.width}); final loss: mean "
        "-cos over the last 10 % of steps.\n\n"
        f"| variant | aligned strong /{n_s} | aligned weak /{n_w} | aligned, per seed "
        f"| decodable strong /{n_s} | decodable weak /{n_w} | eff. rank | final loss |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )

    def line(name: str, sel: list[dict[str, float | str]], prefix: str, loss: bool) -> str:
        def col(key: str, fmt: str) -> str:
            return _mean_sd([float(r[prefix + key]) for r in sel], fmt)

        per_seed = ",".join(str(int(r[prefix + "strong"]) + int(r[prefix + "weak"])) for r in sel)
        last = col("final_loss", ".4f") if loss else ""
        return (
            f"| {name} | {col('strong', '.1f')} | {col('weak', '.1f')} | {per_seed} "
            f"| {col('strong_dec', '.1f')} | {col('weak_dec', '.1f')} | {col('eff_rank', '.2f')} "
            f"| {last} |"
        )

    first = [r for r in rows if r["variant"] == rows[0]["variant"]]
    lines = [line("random init (before training)", first, "init_", loss=False)]
    for variant in dict.fromkeys(r["variant"] for r in rows):
        sel = [r for r in rows if r["variant"] == variant]
        lines.append(line(VARIANTS[str(variant)], sel, "", loss=True))
    return header + "\n".join(lines)
