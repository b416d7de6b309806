"""Experiment programs that reproduce the papers' figures and tables."""
