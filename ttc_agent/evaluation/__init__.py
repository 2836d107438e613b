"""Datasets, trace collection and offline evaluation."""
