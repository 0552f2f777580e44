"""densenet3d_keras.training.trainer: a Trainer subclass changes a step and nothing else."""
import os

import numpy as np

from callbacks.history import read_history
from densenet3d_keras.cli.train import build_parser
from densenet3d_keras.core.compat import keras
from densenet3d_keras.training.config import resolve
from densenet3d_keras.training.trainer import Trainer
from generators.sequence import PatchSequence


class Recorder(keras.callbacks.Callback):
    """Records the epochs it sees end."""

    def __init__(self):
        super(Recorder, self).__init__()
        self.epochs = []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(epoch)


class SgdTrainer(Trainer):
    """Plain SGD at a tenth of the rate, one batch per patient, and a callback of its own."""

    def compile(self, model, optimizer=None):
        return super(SgdTrainer, self).compile(model, optimizer or keras.optimizers.SGD(self.config.lr / 10))

    def data(self, prepared, initial_epoch):
        return PatchSequence(prepared, batch_size=2, n_pos=2, n_neg=2, seed=1, epoch=initial_epoch,
                             patch_size=self.config.patch_size, output_size=self.config.output_size,
                             max_batches_per_patient=1)

    def callbacks(self, sequence, training_log, scorer=None):
        self.recorder = Recorder()
        return super(SgdTrainer, self).callbacks(sequence, training_log, scorer) + [self.recorder]


def test_overridden_steps_change_the_run(keras_session, small_dataset, cache_dir, tmp_path):
    save = str(tmp_path / "run")
    argv = ["-mn", "tiny", "-r", small_dataset, "--n-pos", "4", "--n-neg", "4", "-e", "2", "--padding", "valid",
            "--cache-dir", cache_dir, "-sp", save]
    trainer = SgdTrainer(resolve(build_parser().parse_args(argv)), stream=None)
    result = trainer.train()
    assert type(result["model"].optimizer).__name__ == "SGD"
    assert trainer.recorder.epochs == [0, 1]
    assert len(result["checkpoints"]) == 2 and os.path.isfile(os.path.join(save, "tiny_epoch_002.h5"))
    with open(result["log_path"]) as handle:
        batches = [line for line in handle if line.startswith("epoch-patient:")]
    assert len(batches) == 2 * 3  # one batch per patient (3 training cases), 2 epochs
    rates = [row["lr"] for row in read_history(os.path.join(save, "history.csv"))]
    np.testing.assert_allclose(rates, [5e-5, 5e-5], rtol=1e-6)
