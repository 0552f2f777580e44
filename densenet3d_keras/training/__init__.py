"""Training: the resolved configuration, the patients, the demo dataset and the training loop."""
