"""Keras callbacks of training: the log the ModelZoo scripts parse, and the epoch checkpoints."""
from callbacks.checkpoint import EpochCheckpoint
from callbacks.training_log import TrainingLog, log_path_for_device
