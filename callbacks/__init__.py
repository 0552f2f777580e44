"""Keras callbacks of the training command: the ModelZoo-format log and the checkpoints."""
from callbacks.checkpoint import EpochCheckpoint, find_checkpoint, read_checkpoint_info
from callbacks.training_log import TrainingLog, log_path_for_device

__all__ = ["EpochCheckpoint", "TrainingLog", "find_checkpoint", "log_path_for_device",
           "read_checkpoint_info"]
