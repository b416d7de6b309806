"""Experiment programs: the paper reproduction and the comparison across the model family."""
