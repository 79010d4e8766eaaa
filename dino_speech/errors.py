"""Error types a user can cause and fix.

Every error that a user can provoke with bad input (a missing file, a malformed trial list, a
mistyped config key) derives from :class:`DinoSpeechError`. The CLI prints such errors as one
line and exits with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class DinoSpeechError(Exception):
    """Base class of the errors caused by user input."""


class ConfigError(DinoSpeechError, ValueError):
    """An invalid configuration: unknown key, wrong type, unparsable override."""


class DataError(DinoSpeechError, ValueError):
    """Malformed manifests, lists, trial files or embeddings."""


class TrainingDivergedError(DinoSpeechError):
    """Training diverged: the loss (or the gradients) became NaN or infinite and stayed so,
    usually because the learning rate is too high."""
