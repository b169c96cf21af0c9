"""Experiments: the ablation runner (and, later, benchmarks) loop over training."""
