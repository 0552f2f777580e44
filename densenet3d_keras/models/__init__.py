"""Architecture presets, the model builder, FLOP counts, the training objective and loading."""
