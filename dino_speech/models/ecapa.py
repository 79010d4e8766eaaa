"""ECAPA-TDNN (speechbrain's implementation) behind the toolkit's encoder interface.

:class:`speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN` takes ``(B, T, F)`` features with
*relative* lengths and returns ``(B, 1, D)``; :class:`EcapaEncoder` takes lengths in frames and
returns ``(B, D)``.

Speechbrain pools and squeezes-and-excites over the valid frames only, but its convolutions pad
by reflection, so frames near the end of a padded item see padding. With ``mask_padding``
(default) the convolutions pad with zeros and the output of every TDNN block is zeroed past
each item's length, so a padded item gets exactly the embedding it gets alone (in eval mode).
Zero padding instead of reflection at the utterance edges is the only change to the network.

:func:`traceable_masks` makes the network exportable with a dynamic batch size: speechbrain
builds its masks with ``len(lengths)``, which a graph tracer records as the constant batch size
of the example input.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import speechbrain.lobes.models.ECAPA_TDNN as sb_ecapa
import torch
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN, TDNNBlock
from speechbrain.nnet.CNN import Conv1d as SbConv1d
from torch import nn

from dino_speech.models.pooling import effective_lengths, frame_mask

__all__ = ["EcapaEncoder", "traceable_masks"]


def _length_mask(
    length: torch.Tensor,
    max_len: int | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Speechbrain's ``length_to_mask`` without ``len()``: ``(B,)`` lengths → ``(B, max_len)``,
    1 where ``t < length[b]``; the same values, with the batch size kept symbolic."""
    if max_len is None:
        max_len = int(length.max().long().item())
    steps = torch.arange(max_len, device=length.device, dtype=length.dtype)
    mask = steps.unsqueeze(0) < length.unsqueeze(1)
    return mask.to(dtype=dtype or length.dtype, device=device or length.device)


@contextlib.contextmanager
def traceable_masks() -> Iterator[None]:
    """While active, speechbrain's ECAPA-TDNN builds its masks with :func:`_length_mask`.

    For graph export (TorchScript tracing, ``torch.export``): speechbrain's own helper calls
    ``len(lengths)``, which fixes the batch size of the traced graph to the example's. The
    helper is restored on exit; use it around a trace only (it is not thread-safe).
    """
    original = sb_ecapa.length_to_mask
    sb_ecapa.length_to_mask = _length_mask
    try:
        yield
    finally:
        sb_ecapa.length_to_mask = original


class EcapaEncoder(nn.Module):
    """ECAPA-TDNN encoder: ``(B, T, F)`` features → ``(B, embed_dim)``.

    Args:
        feat_dim: number of mel bins ``F``.
        channels: channels of the three SE-Res2Net blocks (``C``; 512 or 1024 in the papers).
        embed_dim: embedding size (192 in the papers).
        attention_channels, se_channels, res2net_scale: as in speechbrain / the ECAPA paper.
        mask_padding: zero-pad convolutions and mask padded frames (see the module docstring).
    """

    def __init__(
        self,
        feat_dim: int = 80,
        channels: int = 512,
        embed_dim: int = 192,
        attention_channels: int = 128,
        se_channels: int = 128,
        res2net_scale: int = 8,
        mfa_channels: int | None = None,
        kernel_sizes: Sequence[int] = (5, 3, 3, 3, 1),
        dilations: Sequence[int] = (1, 2, 3, 4, 1),
        mask_padding: bool = True,
    ) -> None:
        super().__init__()
        if channels % res2net_scale:
            raise ValueError(f"channels ({channels}) must be divisible by res2net_scale")
        self.feat_dim = feat_dim
        self.embed_dim = embed_dim
        self.mask_padding = mask_padding
        self.net = ECAPA_TDNN(
            feat_dim,
            lin_neurons=embed_dim,
            channels=[channels] * 4 + [mfa_channels or 3 * channels],
            kernel_sizes=list(kernel_sizes),
            dilations=list(dilations),
            attention_channels=attention_channels,
            res2net_scale=res2net_scale,
            se_channels=se_channels,
        )
        # Mask of the valid frames for the batch in flight, read by the block hooks below; it is
        # set and cleared inside `forward`, so it never outlives one call.
        self._mask: torch.Tensor | None = None
        if mask_padding:
            for module in self.net.modules():
                if isinstance(module, SbConv1d) and module.padding == "same":
                    module.padding_mode = "constant"
                if isinstance(module, TDNNBlock):
                    module.register_forward_hook(self._mask_hook)

    def embedding_layer(self) -> nn.Module:
        """The final layer (pooled statistics → embedding), e.g. to fine-tune it alone."""
        return self.net.fc

    def _mask_hook(self, module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
        if self._mask is None:
            return output
        return output * self._mask.to(output.dtype)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``feats (B, T, F)``, ``lengths (B,)`` valid frames or None → ``(B, embed_dim)``."""
        lengths = effective_lengths(feats, lengths)
        if lengths is None:
            return self.net(feats).squeeze(1)
        num_frames = feats.shape[1]
        # Speechbrain masks `arange(T) < rel * T`; half a frame below the length keeps the
        # comparison exact under float rounding.
        relative = (lengths.to(torch.float32) - 0.5) / num_frames
        if not self.mask_padding:
            return self.net(feats, relative).squeeze(1)
        mask = frame_mask(lengths, num_frames)
        try:
            self._mask = mask.unsqueeze(1)  # (B, 1, T), the blocks' channels-first layout
            return self.net(feats * mask.unsqueeze(-1).to(feats.dtype), relative).squeeze(1)
        finally:
            self._mask = None
