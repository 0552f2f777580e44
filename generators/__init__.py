"""Data side of the project: BraTS case discovery, volume loading, sampling and batching."""
