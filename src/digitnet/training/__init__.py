"""Training: optimizers, augmentation, the training history, the engines and the Trainer, presets."""
