"""Scoring predictions: BraTS metrics, the folder report, the results table and overlay images."""
