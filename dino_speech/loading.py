"""Any model a user names → an encoder and the features it expects.

The loading side of the pipeline, above both ends: an embedder package
(:mod:`dino_speech.models.embedder_file`), a DINO training checkpoint (its teacher's encoder,
:func:`dino_speech.train.checkpoint.teacher_encoder`), an experiment directory
(``EXP/embedder.pt``, else the newest checkpoint in ``EXP/checkpoints``), a speechbrain ECAPA
model folder (``hyperparams.yaml`` + ``embedding_model.ckpt``, the layout of
``spkrec-ecapa-voxceleb``; see :mod:`dino_speech.models.speechbrain_ecapa`; the folder
resolves to its ``embedding_model.ckpt``, which loads with the folder's ``hyperparams.yaml``)
or a built-in model name (:mod:`dino_speech.models.stats`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dino_speech.config import EncoderConfig, FbankConfig, from_dict
from dino_speech.errors import ConfigError, DataError
from dino_speech.file_io import load_torch_file
from dino_speech.models.embedder_file import EMBEDDER_FORMAT
from dino_speech.models.registry import build_encoder
from dino_speech.train.checkpoint import CHECKPOINT_FORMAT, find_latest, teacher_encoder

__all__ = ["load_embedder", "load_embedder_spec", "resolve_model_path"]


def resolve_model_path(path: str | Path) -> Path:
    """A file as given; for an experiment directory its ``embedder.pt``, else its latest
    checkpoint (the one ``checkpoints/latest`` names, else the newest); for a speechbrain
    model folder its ``embedding_model.ckpt``."""
    from dino_speech.models.speechbrain_ecapa import EMBEDDING_CKPT, is_speechbrain_folder

    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        if (path / "embedder.pt").is_file():
            return path / "embedder.pt"
        if is_speechbrain_folder(path):
            if not (path / EMBEDDING_CKPT).is_file():
                raise DataError(
                    f"{path / EMBEDDING_CKPT}: missing (a speechbrain model folder needs "
                    f"{EMBEDDING_CKPT} beside hyperparams.yaml)"
                )
            return path / EMBEDDING_CKPT
        latest = find_latest(path / "checkpoints") if (path / "checkpoints").is_dir() else None
        if latest is not None:
            return latest
        raise DataError(f"{path}: no embedder.pt and no checkpoints/*.pt in this directory")
    from dino_speech.models.stats import list_builtin_models

    builtin = ", ".join(list_builtin_models())
    raise DataError(f"model not found: {path} (nor is it a built-in model: {builtin})")


def load_embedder(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[nn.Module, FbankConfig, dict[str, Any]]:
    """Load an embedder package, a DINO training checkpoint, an experiment directory or a
    speechbrain ECAPA model folder.

    ``path`` may also name a built-in model (``logmel-stats``, see
    :mod:`dino_speech.models.stats`) when no file or directory of that name exists.

    Returns:
        The encoder in eval mode on ``device``, its :class:`FbankConfig` (the front end it
        expects), and the package's ``meta`` dictionary (for a checkpoint: ``source``,
        ``step``, ``epoch``).

    Raises:
        DataError: missing file, not a dino_speech model, or weights that do not fit.
    """
    encoder, features, meta, _ = load_embedder_spec(path, device)
    return encoder, features, meta


def _speechbrain_folder(path: Path) -> Path | None:
    """The speechbrain model folder ``path`` is or whose ``embedding_model.ckpt`` it is."""
    from dino_speech.models.speechbrain_ecapa import EMBEDDING_CKPT, is_speechbrain_folder

    if is_speechbrain_folder(path):
        return path
    if path.name == EMBEDDING_CKPT and is_speechbrain_folder(path.parent):
        return path.parent
    return None


def load_embedder_spec(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[nn.Module, FbankConfig, dict[str, Any], EncoderConfig]:
    """:func:`load_embedder`, and the :class:`EncoderConfig` that rebuilds the encoder
    (what :func:`save_embedder` writes with it, e.g. after fine-tuning)."""
    from dino_speech.models.stats import BUILTIN_MODELS, builtin_model

    if str(path) in BUILTIN_MODELS and not Path(path).exists():
        encoder, fbank, meta = builtin_model(str(path))
        encoder_cfg, _ = BUILTIN_MODELS[str(path)]
        return encoder.to(device), fbank, meta, replace(encoder_cfg)
    folder = _speechbrain_folder(Path(path))
    if folder is not None:
        from dino_speech.models.speechbrain_ecapa import load_speechbrain_folder

        resolve_model_path(folder)  # a missing embedding_model.ckpt is named first
        encoder, fbank, meta, encoder_cfg = load_speechbrain_folder(folder)
        return encoder.to(device), fbank, meta, encoder_cfg
    path = resolve_model_path(path)
    blob = load_torch_file(
        path, (EMBEDDER_FORMAT, CHECKPOINT_FORMAT), "dino_speech embedder or checkpoint"
    )
    if blob["format"] == EMBEDDER_FORMAT:
        enc, feats, state = blob["encoder"], blob["features"], blob["state_dict"]
        name, kwargs, feat_dim, meta = enc["name"], enc["kwargs"], enc["feat_dim"], blob["meta"]
    else:
        name, kwargs, feats, state = teacher_encoder(blob)
        feat_dim = feats["num_mel_bins"]
        meta = {"source": str(path), "step": blob["step"], "epoch": blob["epoch"]}
    try:
        fbank = from_dict(FbankConfig, feats, where="features")
        encoder = build_encoder(name, feat_dim=feat_dim, **kwargs)
    except ConfigError as exc:
        raise DataError(f"{path}: {exc}") from None
    try:
        encoder.load_state_dict(state)
    except RuntimeError as exc:
        raise DataError(f"{path}: weights do not fit encoder '{name}': {exc}") from None
    encoder_cfg = EncoderConfig(name=name, kwargs=dict(kwargs))
    return encoder.to(device).eval(), fbank, dict(meta), encoder_cfg
