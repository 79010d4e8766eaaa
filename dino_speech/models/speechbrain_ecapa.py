"""A speechbrain ECAPA-TDNN model folder (the layout of ``spkrec-ecapa-voxceleb``) as a model.

The folder holds ``hyperparams.yaml``, ``embedding_model.ckpt`` (the ECAPA-TDNN ``state_dict``
as speechbrain's checkpointer saves it) and, when present, ``mean_var_norm_emb.ckpt``. Nothing
is downloaded: the ``pretrainer`` section and its paths are never used, only the local files.

``hyperparams.yaml`` is read with an inert YAML loader (:func:`read_hyperparams`): the
hyperpyyaml tags (``!new:``, ``!name:``, ``!ref`` ...) become plain descriptions and no object
named in the file is created or called. Only three entries are used, each of a known
speechbrain class whose arguments are checked: ``compute_features``
(``speechbrain.lobes.features.Fbank``), ``mean_var_norm``
(``speechbrain.processing.features.InputNormalization``, sentence mean normalisation) and
``embedding_model`` (``speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN``).

The model is speechbrain's own network and front end: :class:`SpeechbrainFbank` runs
speechbrain's ``STFT``, ``spectral_magnitude``, ``Filterbank`` and ``InputNormalization``, and
:class:`SpeechbrainEcapa` speechbrain's ``ECAPA_TDNN``, so an utterance gets the embedding
``EncoderClassifier.encode_batch`` gives it alone (``normalize=False``, its default and what
``SpeakerRecognition.verify_batch`` uses; ``mean_var_norm_emb`` is therefore only checked,
not applied). In a zero-padded batch each item still gets that embedding: the spectra of the
padded frames are zeroed before the filterbank (so its per-utterance ``top_db`` floor sees the
valid frames only), the normalisation and pooling use each item's valid frames, and every
"same" convolution pads each item by reflection at its own last frame, as speechbrain does for
the item alone (speechbrain itself reflects at the end of the padded tensor).

Speechbrain frames are centred (``T = 1 + S // hop``), unlike the toolkit's Kaldi fbank.
The front end travels as :class:`~dino_speech.config.FbankConfig` with
``frontend: speechbrain``, the network as registry encoder ``speechbrain_ecapa``, so the model
saves as an ordinary embedder package and fine-tunes like any other (``pseudo-label run
--init FOLDER``).
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from dino_speech.config import EncoderConfig, FbankConfig
from dino_speech.data.features_speechbrain import SpeechbrainFbank, relative_lengths
from dino_speech.errors import ConfigError, DataError

__all__ = [
    "EMBEDDING_CKPT",
    "HYPERPARAMS",
    "SpeechbrainEcapa",
    "SpeechbrainFbank",
    "is_speechbrain_folder",
    "load_speechbrain_folder",
    "read_hyperparams",
]

HYPERPARAMS = "hyperparams.yaml"
EMBEDDING_CKPT = "embedding_model.ckpt"
EMBEDDING_NORM_CKPT = "mean_var_norm_emb.ckpt"

_FBANK = "speechbrain.lobes.features.Fbank"
_NORM = "speechbrain.processing.features.InputNormalization"
_ECAPA = "speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN"


def is_speechbrain_folder(path: str | Path) -> bool:
    """Whether ``path`` is a directory with a ``hyperparams.yaml`` (a speechbrain model)."""
    path = Path(path)
    return path.is_dir() and (path / HYPERPARAMS).is_file()


# --------------------------------------------------------------------------- the network


class _ItemReflectPad:
    """Replaces a speechbrain ``Conv1d``'s ``_manage_padding``: reflect each item of the batch
    at its own last valid frame (``owner._lengths``), as the conv does for the item alone."""

    def __init__(self, owner: SpeechbrainEcapa, conv: nn.Module) -> None:
        self.owner = owner
        self.original = conv._manage_padding

    def __call__(self, x: torch.Tensor, kernel_size: int, dilation: int, stride: int):
        lengths = self.owner._lengths
        pad = dilation * (kernel_size - 1) // 2
        if lengths is None or pad == 0 or stride != 1:
            return self.original(x, kernel_size, dilation, stride)
        frames = x.shape[-1]
        t = torch.arange(-pad, frames + pad, device=x.device)
        n = lengths.to(x.device)[:, None]
        index = torch.where(t[None, :] < n, t.abs()[None, :], 2 * (n - 1) - t[None, :])
        index = index.clamp(0, frames - 1)
        return x.gather(2, index[:, None, :].expand(-1, x.shape[1], -1))


class SpeechbrainEcapa(nn.Module):
    """Speechbrain's ``ECAPA_TDNN`` behind the encoder interface: ``feats (B, T, F)``,
    ``lengths (B,)`` frames → ``(B, embed_dim)``; a padded item gets its embedding alone.

    Args are ``ECAPA_TDNN``'s (``feat_dim`` is ``input_size``, ``embed_dim`` ``lin_neurons``).
    The parameters are ``net.*``: ``ECAPA_TDNN``'s ``state_dict`` names under ``net.``.
    """

    def __init__(
        self,
        feat_dim: int = 80,
        channels: Sequence[int] = (512, 512, 512, 512, 1536),
        kernel_sizes: Sequence[int] = (5, 3, 3, 3, 1),
        dilations: Sequence[int] = (1, 2, 3, 4, 1),
        attention_channels: int = 128,
        embed_dim: int = 192,
        res2net_scale: int = 8,
        se_channels: int = 128,
        global_context: bool = True,
        groups: Sequence[int] = (1, 1, 1, 1, 1),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
        from speechbrain.nnet.CNN import Conv1d as SbConv1d

        if not len(channels) == len(kernel_sizes) == len(dilations) == len(groups):
            raise ValueError("channels, kernel_sizes, dilations and groups need equal lengths")
        if len(channels) < 3:
            raise ValueError(f"ECAPA_TDNN needs at least 3 layers, got {len(channels)}")
        self.feat_dim = feat_dim
        self.embed_dim = embed_dim
        self.net = ECAPA_TDNN(
            feat_dim,
            lin_neurons=embed_dim,
            channels=list(channels),
            kernel_sizes=list(kernel_sizes),
            dilations=list(dilations),
            attention_channels=attention_channels,
            res2net_scale=res2net_scale,
            se_channels=se_channels,
            global_context=global_context,
            groups=list(groups),
            dropout=dropout,
        )
        # The valid frames of the batch in flight (set and cleared in forward), read by the
        # convolutions' per-item padding.
        self._lengths: torch.Tensor | None = None
        for module in self.net.modules():
            if isinstance(module, SbConv1d) and module.padding == "same":
                module._manage_padding = _ItemReflectPad(self, module)

    def embedding_layer(self) -> nn.Module:
        """The final layer (pooled statistics → embedding), e.g. to fine-tune it alone."""
        return self.net.fc

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        from dino_speech.models.pooling import effective_lengths

        lengths = effective_lengths(feats, lengths)
        if lengths is None:
            return self.net(feats).squeeze(1)
        try:
            self._lengths = lengths
            return self.net(feats, relative_lengths(lengths, feats.shape[1])).squeeze(1)
        finally:
            self._lengths = None


# --------------------------------------------------------------------------- hyperparams.yaml


@dataclass(frozen=True)
class _Tagged:
    """A hyperpyyaml tag, not evaluated: ``kind`` ("new", "name", "apply", ...), the dotted
    ``target`` it names, and its arguments."""

    kind: str
    target: str
    args: Any


@dataclass(frozen=True)
class _Ref:
    expr: str


class _InertLoader(yaml.SafeLoader):
    """YAML with hyperpyyaml's tags read as data (nothing imported or called)."""


def _tagged(loader: yaml.Loader, suffix: str, node: yaml.Node, kind: str) -> _Tagged:
    if isinstance(node, yaml.MappingNode):
        args: Any = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        args = loader.construct_sequence(node, deep=True)
    else:
        args = loader.construct_scalar(node) or {}
    return _Tagged(kind, suffix, args)


for _kind in ("new", "name", "apply", "module", "include"):
    _InertLoader.add_multi_constructor(
        f"!{_kind}:", lambda loader, suffix, node, kind=_kind: _tagged(loader, suffix, node, kind)
    )
_InertLoader.add_constructor("!ref", lambda loader, node: _Ref(loader.construct_scalar(node)))
_InertLoader.add_constructor("!copy", lambda loader, node: _Ref(loader.construct_scalar(node)))
_InertLoader.add_constructor(
    "!tuple", lambda loader, node: tuple(yaml.safe_load(f"[{loader.construct_scalar(node)}]"))
)
_InertLoader.add_constructor("!PLACEHOLDER", lambda loader, node: None)


def read_hyperparams(path: str | Path) -> dict[str, Any]:
    """``hyperparams.yaml`` as a dict, hyperpyyaml tags as inert ``_Tagged`` values and
    ``!ref <key>`` resolved (keys, ``key[sub]``, simple arithmetic, string substitution).

    Raises:
        DataError: unreadable YAML (naming the file).
    """
    path = Path(path)
    try:
        data = yaml.load(path.read_text(), Loader=_InertLoader)  # noqa: S506 - inert loader
    except (OSError, yaml.YAMLError) as exc:
        reason = " ".join(str(exc).split())
        raise DataError(f"{path}: cannot read speechbrain hyperparameters: {reason}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: not a speechbrain hyperparameter file (not a mapping)")
    return _resolve(data, data, path, depth=0)


_REF = re.compile(r"<([^<>]+)>")
_ARITH = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}


def _resolve(value: Any, root: dict[str, Any], path: Path, depth: int) -> Any:
    if depth > 50:
        raise DataError(f"{path}: !ref references nest too deep (a cycle?)")
    if isinstance(value, _Ref):
        return _resolve(_lookup_expr(value.expr, root, path), root, path, depth + 1)
    if isinstance(value, _Tagged):
        return _Tagged(value.kind, value.target, _resolve(value.args, root, path, depth + 1))
    if isinstance(value, dict):
        return {k: _resolve(v, root, path, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_resolve(v, root, path, depth + 1) for v in value)
    return value


def _lookup_expr(expr: str, root: dict[str, Any], path: Path) -> Any:
    whole = _REF.fullmatch(expr.strip())
    if whole:
        return _lookup(whole.group(1), root, path)

    def text(match: re.Match[str]) -> str:
        found = _resolve(_lookup(match.group(1), root, path), root, path, depth=1)
        return str(found)

    substituted = _REF.sub(text, expr)
    try:
        return _arith(ast.parse(substituted, mode="eval").body)
    except (SyntaxError, ValueError, TypeError, ZeroDivisionError):
        return substituted


def _arith(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
        return _ARITH[type(node.op)](_arith(node.left), _arith(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_arith(node.operand)
    raise ValueError("not arithmetic")


def _lookup(key: str, root: dict[str, Any], path: Path) -> Any:
    parts = [p for p in re.split(r"[\[\]]", key.strip()) if p]
    node: Any = root
    for part in parts:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, _Tagged) and isinstance(node.args, dict) and part in node.args:
            node = node.args[part]
        else:
            raise DataError(f"{path}: !ref <{key}> names no entry of the file")
    return node


# --------------------------------------------------------------------------- the folder


_FBANK_ARGS = {
    "sample_rate",
    "n_mels",
    "f_min",
    "f_max",
    "n_fft",
    "win_length",
    "hop_length",
    "deltas",
    "context",
    "requires_grad",
    "filter_shape",
    "param_change_factor",
    "param_rand_factor",
    "left_frames",
    "right_frames",
}
_NORM_ARGS = {
    "mean_norm",
    "std_norm",
    "norm_type",
    "length_dim",
    "update_until_epoch",
    "avoid_padding_norm",
    "epsilon",
    "device",
}
_ECAPA_ARGS = {
    "input_size": "feat_dim",
    "lin_neurons": "embed_dim",
    "channels": "channels",
    "kernel_sizes": "kernel_sizes",
    "dilations": "dilations",
    "attention_channels": "attention_channels",
    "res2net_scale": "res2net_scale",
    "se_channels": "se_channels",
    "global_context": "global_context",
    "groups": "groups",
    "dropout": "dropout",
}


def _entry(hparams: dict[str, Any], name: str, target: str, file: Path) -> _Tagged | None:
    """``hparams[name]`` (or ``modules[name]``) checked to be ``!new:target``; None if absent."""
    modules = hparams.get("modules")
    value = hparams.get(name)
    if value is None and isinstance(modules, dict):
        value = modules.get(name)
    if value is None:
        return None
    if not isinstance(value, _Tagged) or value.kind != "new":
        raise DataError(f"{file}: '{name}' is not a !new:{target} object")
    if value.target != target:
        raise DataError(f"{file}: '{name}' is {value.target}; supported: {target}")
    if not isinstance(value.args, dict):
        raise DataError(f"{file}: '{name}' needs keyword arguments")
    return value


def _check_args(args: dict[str, Any], valid: set[str] | dict[str, str], name: str, file: Path):
    unknown = sorted(k for k in args if k not in valid)
    if unknown:
        raise DataError(f"{file}: '{name}' has argument(s) not supported here: {unknown}")


def _features(hparams: dict[str, Any], file: Path) -> FbankConfig:
    fbank = _entry(hparams, "compute_features", _FBANK, file)
    if fbank is None:
        raise DataError(f"{file}: no 'compute_features' (a !new:{_FBANK})")
    args = fbank.args
    _check_args(args, _FBANK_ARGS, "compute_features", file)
    for flag in ("deltas", "context"):
        if args.get(flag):
            raise DataError(f"{file}: compute_features {flag}: True is not supported")
    if args.get("filter_shape", "triangular") != "triangular":
        raise DataError(f"{file}: compute_features filter_shape must be 'triangular'")
    sample_rate = int(args.get("sample_rate", 16000))
    win, hop = float(args.get("win_length", 25)), float(args.get("hop_length", 10))
    n_fft = int(args.get("n_fft", 400))
    if n_fft != int(round(sample_rate * win / 1000.0)):
        raise DataError(
            f"{file}: compute_features n_fft {n_fft} differs from the window "
            f"({win:g} ms at {sample_rate} Hz); only n_fft = window is supported"
        )
    f_max = args.get("f_max")
    norm = _entry(hparams, "mean_var_norm", _NORM, file)
    mean_norm = "none"
    if norm is not None:
        _check_args(norm.args, _NORM_ARGS, "mean_var_norm", file)
        if norm.args.get("norm_type", "global") != "sentence":
            raise DataError(f"{file}: mean_var_norm norm_type must be 'sentence'")
        if norm.args.get("std_norm", True):
            raise DataError(f"{file}: mean_var_norm std_norm: True is not supported")
        if int(norm.args.get("length_dim", 1)) != 1:
            raise DataError(f"{file}: mean_var_norm length_dim must be 1")
        mean_norm = "utterance"
    try:
        return FbankConfig(
            sample_rate=sample_rate,
            num_mel_bins=int(args.get("n_mels", 40)),
            frame_length_ms=win,
            frame_shift_ms=hop,
            low_freq=float(args.get("f_min", 0.0)),
            high_freq=float(sample_rate // 2 if f_max is None else f_max),
            mean_norm=mean_norm,
            wave_scale=1.0,
            frontend="speechbrain",
        )
    except (TypeError, ValueError) as exc:
        raise DataError(f"{file}: compute_features: {exc}") from None


def _encoder_config(hparams: dict[str, Any], features: FbankConfig, file: Path) -> EncoderConfig:
    ecapa = _entry(hparams, "embedding_model", _ECAPA, file)
    if ecapa is None:
        raise DataError(f"{file}: no 'embedding_model' (a !new:{_ECAPA})")
    args = dict(ecapa.args)
    args.pop("device", None)
    activation = args.pop("activation", None)
    if activation is not None and not (
        isinstance(activation, _Tagged) and activation.target == "torch.nn.ReLU"
    ):
        raise DataError(f"{file}: embedding_model activation must be torch.nn.ReLU")
    _check_args(args, _ECAPA_ARGS, "embedding_model", file)
    if "input_size" not in args:
        raise DataError(f"{file}: embedding_model has no input_size")
    if int(args["input_size"]) != features.num_mel_bins:
        raise DataError(
            f"{file}: embedding_model input_size {args['input_size']} differs from "
            f"compute_features n_mels {features.num_mel_bins}"
        )
    kwargs: dict[str, Any] = {}
    for key, value in args.items():
        if key == "input_size":
            continue
        kwargs[_ECAPA_ARGS[key]] = list(value) if isinstance(value, (list, tuple)) else value
    return EncoderConfig(name="speechbrain_ecapa", kwargs=kwargs)


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise DataError(f"{path}: missing (a speechbrain model folder needs {path.name})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: cannot read: {reason}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"{path}: not a state_dict (a mapping of names to tensors)")
    return state


def _describe_mismatch(exc: RuntimeError) -> str:
    """The first line of a ``load_state_dict`` error's details, shortened."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = lines[1] if len(lines) > 1 else lines[0] if lines else "weights do not fit"
    return detail if len(detail) <= 300 else detail[:297] + "..."


def _check_embedding_norm(path: Path, embed_dim: int) -> None:
    """``mean_var_norm_emb.ckpt`` (InputNormalization statistics), when present, must be
    readable and of the embedding's size; it is not applied (see the module docstring)."""
    if not path.is_file():
        return
    try:
        stats = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: cannot read: {reason}") from None
    mean = stats.get("glob_mean") if isinstance(stats, dict) else None
    if not isinstance(mean, torch.Tensor):
        raise DataError(f"{path}: not InputNormalization statistics (no glob_mean)")
    if mean.numel() not in (0, embed_dim):
        raise DataError(
            f"{path}: glob_mean has {mean.numel()} values, the embedding {embed_dim} dimensions"
        )


def load_speechbrain_folder(
    folder: str | Path,
) -> tuple[nn.Module, FbankConfig, dict[str, Any], EncoderConfig]:
    """``(encoder in eval mode on CPU, front end, meta, encoder config)`` of a speechbrain
    ECAPA model folder.

    Raises:
        DataError: a missing, unreadable or unsupported ``hyperparams.yaml``, a missing
            ``embedding_model.ckpt``, or weights that do not fit the hyperparameters; the
            message names the file.
    """
    from dino_speech.models.registry import build_encoder

    folder = Path(folder)
    file = folder / HYPERPARAMS
    if not file.is_file():
        raise DataError(f"{file}: missing (not a speechbrain model folder)")
    hparams = read_hyperparams(file)
    features = _features(hparams, file)
    encoder_cfg = _encoder_config(hparams, features, file)
    try:
        encoder = build_encoder(
            encoder_cfg.name, feat_dim=features.num_mel_bins, **encoder_cfg.kwargs
        )
    except ConfigError as exc:
        raise DataError(f"{file}: embedding_model: {exc}") from None
    ckpt = folder / EMBEDDING_CKPT
    state = _read_state(ckpt)
    try:
        encoder.net.load_state_dict(state)
    except RuntimeError as exc:
        raise DataError(
            f"{ckpt}: does not fit the embedding_model of {HYPERPARAMS}: {_describe_mismatch(exc)}"
        ) from None
    _check_embedding_norm(folder / EMBEDDING_NORM_CKPT, encoder.embed_dim)
    meta = {"source": str(folder), "speechbrain": True}
    return encoder.eval(), features, meta, encoder_cfg
