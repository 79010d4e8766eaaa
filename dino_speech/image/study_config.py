"""Settings of the prediction-head study: re-exported from :mod:`dino_speech.config.image`.

The schema lives with the other experiment configs (torch-free, loaded by the config loader);
see :mod:`dino_speech.image.predictor_study` for the data model, network and measures.
"""

from __future__ import annotations

from dino_speech.config.image import DEFAULT_VARIANTS, VARIANTS, StudyConfig

__all__ = ["DEFAULT_VARIANTS", "VARIANTS", "StudyConfig"]
