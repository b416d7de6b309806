"""Experiment programs built on the package (comparisons across the model family)."""
