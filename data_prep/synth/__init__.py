"""The procedural source-filter speech generator behind the built-in synthetic corpus.

``plan`` (the corpus design: speakers, sessions, utterances, trials), ``voice`` (speaker
traits, emotions), ``phones`` (shared phone inventory -> articulation tracks),
``source_filter`` (glottal source and vocal-tract filtering) and ``channel`` (room, noise, EQ,
band limit, level). :mod:`data_prep.synthetic` renders a plan and writes the corpus.
"""
