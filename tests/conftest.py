"""Shared test fixtures: a tiny synthetic corpus generated once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

# Settings of the session corpus; tests that regenerate it must use the same ones.
SYNTHETIC_CORPUS_SETTINGS = {
    "num_speakers": 8,
    "utts_per_speaker": 6,
    "duration_range": (1.5, 3.0),
    "num_test_speakers": 2,
    "seed": 0,
}


@pytest.fixture(scope="session")
def synthetic_corpus_settings() -> dict:
    """The ``prepare_synthetic`` keyword arguments the ``synthetic_corpus`` was made with."""
    return dict(SYNTHETIC_CORPUS_SETTINGS)


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared synthetic corpus: 8 speakers x 6 utterances of 1.5-3 s, 2 test speakers.

    Layout as ``dino-speech prepare synthetic`` writes it (``synthetic_cuts_{train,test}``
    manifests, ``{train,test}/`` Kaldi lists, ``test/trials``, ``wavs/``). Shared by the whole
    session: do not modify it; copy it first.
    """
    from data_prep.synthetic import prepare_synthetic

    out = tmp_path_factory.mktemp("synthetic_corpus")
    prepare_synthetic(out, **SYNTHETIC_CORPUS_SETTINGS)
    return out
