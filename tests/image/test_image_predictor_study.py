"""The prediction-head study: data model, measures, and short runs of each variant."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dino_speech.errors import ConfigError
from dino_speech.image.predictor_study import (
    FeatureModel,
    alignment,
    decodability,
    format_study_table,
    measure,
    run_study,
    run_variant,
)
from dino_speech.image.study_config import VARIANTS, StudyConfig

SMALL = StudyConfig(input_dim=16, num_strong=2, num_weak=3, width=5, steps=30, batch_size=32,
                    num_test=256, seeds=(0, 1))  # fmt: skip


def test_feature_model_directions_and_views() -> None:
    model = FeatureModel(SMALL, seed=0)
    d = model.directions
    torch.testing.assert_close(d @ d.T, torch.eye(5), atol=1e-5, rtol=0)
    gen = torch.Generator().manual_seed(0)
    z = model.latents(2000, gen)
    assert set(z.unique().tolist()) <= {-1, 0, 1}
    assert float((z != 0).float().mean()) == pytest.approx(SMALL.presence, abs=0.03)
    clean = model.render(z, None)
    coords = clean @ d.T  # feature coordinates are z_j * s_j
    torch.testing.assert_close(coords, z * model.strengths, atol=1e-5, rtol=0)
    x1, x2 = model.views(z, gen)
    kept = ((x1 @ d.T).abs() > 0.2).float().sum() / (z != 0).float().sum()
    assert float(kept) == pytest.approx(SMALL.keep, abs=0.05)
    assert not torch.equal(x1, x2)


def test_measures_on_known_weights() -> None:
    model = FeatureModel(SMALL, seed=0)
    gen = torch.Generator().manual_seed(1)
    # one neuron per feature, exactly aligned (and one spare): everything is learnt
    weight = torch.cat([model.directions, model.directions[:1]])
    assert torch.equal(alignment(weight, model.directions).max(0).values >= 0.999,
                       torch.ones(5, dtype=torch.bool))  # fmt: skip
    m = measure(SMALL, model, weight, gen)
    assert (m["strong"], m["weak"]) == (2, 3)
    # a neuron split evenly between the two strong features (cos 0.71 with each) is not
    # aligned with either at the default threshold 0.8
    mixed = (model.directions[0] + model.directions[1]) / 2**0.5
    m = measure(SMALL, model, mixed[None], gen)
    assert (m["strong"], m["weak"]) == (0, 0)
    # weights orthogonal to every feature: nothing decodable
    q, _ = torch.linalg.qr(torch.randn(16, 16))
    ortho = q[:, 5:10].T - (q[:, 5:10].T @ model.directions.T) @ model.directions
    m = measure(SMALL, model, ortho, gen)
    assert m["strong_dec"] == 0 and m["weak_dec"] == 0


def test_decodability_is_r2() -> None:
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(500, 2, generator=gen)
    reps = torch.cat([z[:, :1] * 2 + 1, torch.randn(500, 1, generator=gen)], 1)
    r2 = decodability(reps, z)
    assert float(r2[0]) == pytest.approx(1.0, abs=1e-6)
    assert float(r2[1]) < 0.05


def test_run_variant_pairs_seeds_and_differs_by_variant() -> None:
    rows = {v: run_variant(SMALL, v, 0) for v in VARIANTS}
    for row in rows.values():
        assert {"strong", "weak", "strong_dec", "eff_rank", "final_loss", "init_strong"} <= set(row)
    # same seed -> same initial weights for every variant
    assert len({row["init_eff_rank"] for row in rows.values()}) == 1
    # the variants really train differently
    assert len({round(float(row["final_loss"]), 6) for row in rows.values()}) == len(VARIANTS)


def test_run_study_and_table() -> None:
    cfg = dataclasses.replace(SMALL, variants=("identity", "offdiag"))
    rows = run_study(cfg, progress=False)
    assert len(rows) == 4
    table = format_study_table(cfg, rows)
    assert "random init" in table and VARIANTS["offdiag"] in table
    lines = [ln for ln in table.splitlines() if ln.startswith("| ")]
    assert len(lines) == 4  # column names, random init, two variants


def test_bad_study_config() -> None:
    with pytest.raises(ConfigError, match="valid variants"):
        run_study(dataclasses.replace(SMALL, variants=("bogus",)), progress=False)
    with pytest.raises(ConfigError):
        run_study(dataclasses.replace(SMALL, num_weak=40), progress=False)
