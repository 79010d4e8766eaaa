"""Self-supervised objectives on speech: DINO head, loss, teacher and schedules."""
