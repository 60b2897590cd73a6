"""What the front ends ask for: a whole training run, evaluation, robustness curves."""
