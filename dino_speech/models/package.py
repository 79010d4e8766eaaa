"""The embedder package: one file with a trained encoder and the features it expects.

``save_embedder`` writes (atomically: a temporary file, then ``os.replace``) a ``torch.save``
dictionary::

    {
        "format": "dino_speech/embedder-v1",
        "encoder": {"name": str, "kwargs": dict, "feat_dim": int},
        "features": {...FbankConfig fields...},
        "state_dict": {parameter name: tensor},   # the encoder's, on CPU
        "meta": {...},                            # free-form: source, step, epoch, config, ...
    }

It holds only plain Python types and tensors, so it loads with ``torch.load(weights_only=True)``.
:func:`load_embedder` also accepts a training checkpoint (it takes the teacher's backbone), an
experiment directory (``EXP/embedder.pt``, else the newest checkpoint in ``EXP/checkpoints``),
a speechbrain ECAPA model folder (``hyperparams.yaml`` + ``embedding_model.ckpt``, the layout
of ``spkrec-ecapa-voxceleb``; see :mod:`dino_speech.models.speechbrain_ecapa`; the folder
resolves to its ``embedding_model.ckpt``, which loads with the folder's ``hyperparams.yaml``)
or a built-in model name.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dino_speech.config import EncoderConfig, FbankConfig, from_dict, to_dict
from dino_speech.errors import ConfigError, DataError
from dino_speech.models.registry import build_encoder

__all__ = [
    "EMBEDDER_FORMAT",
    "atomic_torch_save",
    "load_embedder",
    "load_embedder_spec",
    "load_torch_file",
    "resolve_model_path",
    "save_embedder",
]

EMBEDDER_FORMAT = "dino_speech/embedder-v1"
# Written by dino_speech.train.checkpoint; read here to take the teacher of a training run.
CHECKPOINT_FORMAT = "dino_speech/dino-checkpoint-v1"
BACKBONE_PREFIX = "backbone."


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename it over ``path``.

    A reader never sees a half-written file, and a crash leaves the previous file intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_torch_file(path: str | Path, formats: Sequence[str], what: str) -> dict[str, Any]:
    """Read (on CPU, ``weights_only``) a dictionary this toolkit wrote and check its format.

    Args:
        path: the file.
        formats: accepted values of the dictionary's ``"format"`` entry.
        what: what the file should be, for the error messages (e.g. "margin classifier").

    Raises:
        DataError: the file cannot be read, or its format is not one of ``formats``.
    """
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise DataError(f"{path}: cannot read {what}: {exc}") from None
    fmt = blob.get("format") if isinstance(blob, dict) else None
    if fmt not in formats:
        expected = " or ".join(repr(f) for f in formats)
        raise DataError(f"{path}: not a {what} (format {fmt!r}; expected {expected})")
    return blob


def save_embedder(
    path: str | Path,
    encoder: nn.Module,
    encoder_cfg: EncoderConfig,
    features: FbankConfig,
    meta: dict[str, Any] | None = None,
) -> None:
    """Write ``encoder`` (built from ``encoder_cfg`` for ``features``) as an embedder package."""
    state = {k: v.detach().to("cpu", copy=True) for k, v in encoder.state_dict().items()}
    package = {
        "format": EMBEDDER_FORMAT,
        "encoder": {
            "name": encoder_cfg.name,
            "kwargs": to_dict(encoder_cfg.kwargs),
            "feat_dim": features.num_mel_bins,
        },
        "features": to_dict(features),
        "state_dict": state,
        "meta": dict(meta or {}),
    }
    atomic_torch_save(package, path)


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
        from dino_speech.train.checkpoint import find_latest

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
        config = blob["config"]
        name, kwargs = config["model"]["name"], config["model"]["kwargs"]
        feats = config["data"]["features"]
        feat_dim = feats["num_mel_bins"]
        state = {
            k[len(BACKBONE_PREFIX) :]: v
            for k, v in blob["teacher"].items()
            if k.startswith(BACKBONE_PREFIX)
        }
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
