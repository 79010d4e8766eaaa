"""Iterative pseudo-labeling: clustering, margin-softmax fine-tuning, the round loop."""
