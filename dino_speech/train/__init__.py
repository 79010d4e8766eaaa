"""The training loop: checkpoints and exact resume, distributed helpers, monitoring."""
