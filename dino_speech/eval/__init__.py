"""Evaluation: speaker verification (EER, minDCF, score normalisation) and emotion probes."""
