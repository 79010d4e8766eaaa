"""Self-supervised objectives on speech: DINO head, loss, teacher and schedules.

:mod:`~dino_speech.ssl.ema` (the teacher's moving average) and the half cosine of
:mod:`~dino_speech.ssl.schedules` also drive the image training (BYOL's target network and
the learning-rate decay).
"""
