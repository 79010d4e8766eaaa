"""Image-domain non-contrastive SSL (BYOL, SimSiam, Barlow Twins, VICReg), predictor study."""
