"""Speaker-embedding encoders (ECAPA-TDNN, ResNets) behind a registry."""
