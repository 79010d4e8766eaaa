"""dino_speech: utterance-level speech embeddings learnt without labels (DINO)."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["Embedder", "__version__"]


def __getattr__(name: str) -> Any:
    # Imported lazily so that `import dino_speech` (and the CLI) stay light.
    if name == "Embedder":
        from dino_speech.embedder import Embedder

        return Embedder
    raise AttributeError(f"module 'dino_speech' has no attribute {name!r}")
