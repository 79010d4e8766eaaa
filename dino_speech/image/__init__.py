"""Image-domain non-contrastive SSL (BYOL, SimSiam, Barlow Twins, VICReg) and the predictor study."""
