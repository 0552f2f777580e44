"""Whole-case inference: tile geometry, the tiled and sliding-window predictors, the case pipeline."""
