"""The shipped model: dense24 trained on ten real BraTS 2018 cases (``-m pretrained``).

The folder :data:`FOLDER` (``pretrained_files/`` beside this module) holds the weights-only
checkpoint (:data:`CHECKPOINT`, which records its architecture and padding), the training
run's ``config.json`` (read like any run's: N4 off), the postprocessing settings chosen on the
cross-validation folds (:data:`POSTPROCESSING`) and ``MODEL_CARD.md`` (data, recipe, command,
cross-validated Dice, training time, limitations).

``pretrained`` is a name, not a path: ``-m pretrained`` always means this model; a local
folder of that name is ``-m ./pretrained``.
"""
import os

#: The value of ``-m`` that names the shipped model.
NAME = "pretrained"
#: The folder of the shipped model's files.
FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained_files")
#: The shipped checkpoint (weights only: for prediction and export, not for resuming).
CHECKPOINT = os.path.join(FOLDER, "dense24_brats2018_real.h5")
#: The postprocessing settings chosen for it on the cross-validation folds.
POSTPROCESSING = os.path.join(FOLDER, "postprocessing.json")
#: The model card.
MODEL_CARD = os.path.join(FOLDER, "MODEL_CARD.md")


def is_pretrained(checkpoint):
    """Whether a ``-m`` value names the shipped model."""
    return checkpoint == NAME


def resolve_checkpoint(checkpoint):
    """The checkpoint path a ``-m`` value means: :data:`CHECKPOINT` for ``pretrained``, else
    the value unchanged.

    Raises:
        FileNotFoundError: ``pretrained`` was asked for and this installation lacks its file.
    """
    if not is_pretrained(checkpoint):
        return checkpoint
    if not os.path.isfile(CHECKPOINT):
        raise FileNotFoundError("the pretrained model is missing from this installation "
                                "(expected %s)" % CHECKPOINT)
    return CHECKPOINT
