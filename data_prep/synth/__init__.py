"""The procedural source-filter speech generator behind the built-in synthetic corpus.

``voice`` (speaker traits, emotions), ``phones`` (shared phone inventory -> articulation
tracks), ``source_filter`` (glottal source and vocal-tract filtering) and ``channel`` (room,
noise, EQ, band limit, level). :mod:`data_prep.synthetic` turns them into a corpus.
"""
