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


# A speechbrain ECAPA model folder in the layout of spkrec-ecapa-voxceleb (its hyperparams.yaml,
# shrunk): `pretrained_path` is never fetched by dino_speech; speechbrain's own
# EncoderClassifier is pointed at the folder with an override of it.
SPEECHBRAIN_HYPERPARAMS = """\
# ############################################################################
# Model: ECAPA for speaker verification (layout of speechbrain/spkrec-ecapa-voxceleb)
# ############################################################################

n_mels: 80
pretrained_path: speechbrain/spkrec-ecapa-voxceleb
out_n_neurons: 7205

compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: !ref <n_mels>

mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False

embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: !ref <n_mels>
    channels: [32, 32, 32, 32, 96]
    kernel_sizes: [5, 3, 3, 3, 1]
    dilations: [1, 2, 3, 4, 1]
    attention_channels: 16
    se_channels: 16
    res2net_scale: 4
    lin_neurons: 24

mean_var_norm_emb: !new:speechbrain.processing.features.InputNormalization
    norm_type: global
    std_norm: False

modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
    mean_var_norm_emb: !ref <mean_var_norm_emb>

pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
        mean_var_norm_emb: !ref <mean_var_norm_emb>
    paths:
        embedding_model: !ref <pretrained_path>/embedding_model.ckpt
        mean_var_norm_emb: !ref <pretrained_path>/mean_var_norm_emb.ckpt
"""


# The ECAPA_TDNN sizes of SPEECHBRAIN_HYPERPARAMS; spkrec-ecapa-voxceleb's are in
# bench/speechbrain_parity.py.
SMALL_ECAPA = {
    "channels": [32, 32, 32, 32, 96],
    "attention_channels": 16,
    "se_channels": 16,
    "res2net_scale": 4,
    "lin_neurons": 24,
}


def write_speechbrain_folder(folder: Path, seed: int = 0, **sizes: object) -> Path:
    """A randomly initialised speechbrain ECAPA_TDNN saved as speechbrain saves it: the
    ``state_dict`` in ``embedding_model.ckpt`` (BatchNorm statistics randomised too, so eval
    mode is not the identity), ``InputNormalization`` statistics in ``mean_var_norm_emb.ckpt``.
    ``sizes``: ECAPA_TDNN arguments other than :data:`SMALL_ECAPA`'s (written into the YAML too).
    """
    import torch
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
    from speechbrain.processing.features import InputNormalization

    folder.mkdir(parents=True, exist_ok=True)
    text = SPEECHBRAIN_HYPERPARAMS
    for key, value in sizes.items():
        text = text.replace(f"    {key}: {SMALL_ECAPA[key]}", f"    {key}: {value}")
    (folder / "hyperparams.yaml").write_text(text)
    torch.manual_seed(seed)
    kwargs = {**SMALL_ECAPA, **sizes}
    model = ECAPA_TDNN(80, **kwargs)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.normal_(0.0, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    torch.save(model.state_dict(), folder / "embedding_model.ckpt")
    norm = InputNormalization(norm_type="global", std_norm=False).train()
    norm(torch.randn(4, 1, int(kwargs["lin_neurons"])), torch.ones(4))
    norm._save(folder / "mean_var_norm_emb.ckpt")  # what speechbrain's checkpointer calls
    return folder


@pytest.fixture(scope="session")
def speechbrain_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A speechbrain ECAPA model folder (see :func:`write_speechbrain_folder`); read-only."""
    return write_speechbrain_folder(tmp_path_factory.mktemp("sb") / "spkrec-ecapa-tiny")
