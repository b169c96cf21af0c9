"""Training: runtime, loaders, losses, optimizer, the loop, one run (fit) and all folds (folds)."""
