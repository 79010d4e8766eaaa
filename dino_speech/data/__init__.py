"""Lhotse CutSets in, DINO batches out: manifests, multi-crop sampling, augmentation, features."""
