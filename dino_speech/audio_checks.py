"""Checks on audio that reads fine but makes a meaningless embedding.

Silent or near-silent audio (a muted channel, a recording that failed, digital zeros) embeds
to whatever the encoder makes of its noise floor: a vector without speaker information that
still scores against everything. Such audio is embedded anyway, with a warning naming it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "SILENT_PEAK",
    "SILENT_RMS_DBFS",
    "silence_reason",
    "warn_if_silent",
    "warn_silent_items",
]

logger = logging.getLogger(__name__)

# Near-silent: every sample below SILENT_PEAK in magnitude (about 3 steps of 16-bit PCM), or
# an RMS level below SILENT_RMS_DBFS (full scale = 1.0; speech is typically -40 to -15 dBFS).
SILENT_PEAK = 1e-4
SILENT_RMS_DBFS = -60.0


def silence_reason(wave: torch.Tensor) -> str | None:
    """Why ``wave`` (samples in [-1, 1]) counts as near-silent, or None when it does not."""
    if wave.numel() == 0:
        return None  # empty audio is an error raised elsewhere
    x = wave.detach().float()
    peak = float(x.abs().max())
    rms = float(x.pow(2).mean().sqrt())
    dbfs = 20.0 * math.log10(rms) if rms > 0 else -math.inf
    if peak < SILENT_PEAK or dbfs < SILENT_RMS_DBFS:
        level = "-inf" if math.isinf(dbfs) else f"{dbfs:.1f}"
        return f"peak {peak:.2g}, RMS {level} dBFS"
    return None


def warn_if_silent(wave: torch.Tensor, name: str | Path) -> bool:
    """Log a warning naming ``name`` when ``wave`` is near-silent; True when it is."""
    reason = silence_reason(wave)
    if reason is None:
        return False
    logger.warning(
        "%s: silent or near-silent audio (%s); its embedding is noise, not speech", name, reason
    )
    return True


def warn_silent_items(pool: Iterable[tuple[int, Any]], items: Sequence[tuple[str, Any]]) -> None:
    """:func:`warn_if_silent` for each ``(index, waveform)`` of ``pool``; ``items[index]`` is
    ``(id, path or cut)`` and names it (entries that are not tensors are skipped)."""
    for index, wave in pool:
        if isinstance(wave, torch.Tensor):
            warn_if_silent(wave, _label(*items[index]))


def _label(utt: str, source: Any) -> str:
    if isinstance(source, (str, Path)) and str(source) != utt:
        return f"{utt} ({source})"
    return utt
