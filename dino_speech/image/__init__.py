"""Image-domain non-contrastive SSL (BYOL, SimSiam, Barlow Twins, VICReg) and the predictor study.

Modules, one concept each:

* ``heads`` — projector MLP and the predictor variants (MLP, linear, off-diagonal identity,
  DirectPred).
* ``losses`` — the methods' losses as pure functions of two embedding batches.
* ``methods`` — BYOL, SimSiam, Barlow Twins, VICReg on one interface; BYOL's EMA.
* ``backbones`` — CIFAR ResNet-18 and a small CNN for 8 x 8 images.
* ``data`` / ``augment`` — digits (bundled with scikit-learn) and CIFAR-10 (local folder);
  batched on-device view augmentations.
* ``evaluate`` — kNN, linear probe and collapse diagnostics on frozen features.
* ``train`` — one training run with its evaluation next to random init and raw pixels.
* ``report`` — results tables.
* ``predictor_study`` / ``study_config`` — the prediction-head study (Wen & Li, NeurIPS 2022).
"""
