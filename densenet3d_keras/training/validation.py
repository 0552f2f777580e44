"""Validation cases of a training run and the scoring function of :class:`callbacks.validation.Validation`.

``--val-list`` names held-out cases under the dataset root. They are never sampled for
training: a training list (``--train-list`` or ``<root>/train.txt``) that names one of them is
refused; without a training list, the training cases are every other case under the root.

Each validation segments every case's whole volume with a fully convolutional copy of the
network (the weights of the model being trained, copied in before every validation; built
once, outside any ``tf.distribute`` scope) as ``predict_keras.py --method fcn`` does, and
scores Dice of WT, TC and ET against its label map. Cases are read through the
preprocessing cache, so after the first validation no NIfTI file is decoded again.
"""
import time

from densenet3d_keras.core import compat
from densenet3d_keras.core.labels import REGIONS, region_mask
from densenet3d_keras.evaluation.metrics import dice
from densenet3d_keras.inference.predict import model_predictor, predict_fcn
from densenet3d_keras.models.builder import build_model
from generators.brats import discover_cases, resolve_case_list
from generators.cache import load_cached


def select_validation_cases(config):
    """The ``--val-list`` cases, N4 applied as for training (the training cases are checked
    against them by :func:`densenet3d_keras.training.data.select_cases`).

    Raises:
        ValueError: the list names a case twice, or is empty.
        FileNotFoundError: the list or one of its cases is missing.
    """
    names = resolve_case_list(config.root_path, config.val_list, default_name="")
    cases = discover_cases(config.root_path, names, require_label=True)
    if config.n4correction:
        cases = [case.corrected() for case in cases]
    return cases


def network_predictor(network):
    """A predictor (batch -> label logits) of a model built outside any ``tf.distribute``
    scope that stays out of the training's strategy when called from one of its callbacks.

    ``Model.predict_on_batch`` runs under the strategy in force where it is called, which
    inside ``fit`` is the training's (a multi-worker one would gather every batch across the
    workers); a ``tf.function`` of the model's call runs on this process's copy only. Graph
    mode (TensorFlow 1.x: no eager ``tf.function``, no multi-worker strategy) uses
    ``predict_on_batch``.
    """
    if compat.graph_mode():
        return model_predictor(network)
    index = list(network.output_names).index("labels")
    tf = compat.tf
    signature = [tf.TensorSpec((None, None, None, None, network.input_shape[-1]), tf.float32)]
    function = tf.function(lambda batch: network(batch, training=False)[index], input_signature=signature)
    return lambda batch: function(batch).numpy()


class CaseScorer(object):
    """The ``score_cases`` of :class:`callbacks.validation.Validation` for a set of cases.

    Args:
        cases: labelled :class:`generators.brats.Case` objects.
        config: the run's configuration (model name, padding, cache, patch size).
        log: callable taking a line (the cache preparation's progress).

    Call it with the model being trained: returns ``[{"wt": Dice, "tc": .., "et": ..}, ...]``
    in case order. :attr:`case_ids` names them.
    """

    def __init__(self, cases, config, log=print):
        started = time.time()
        self.prepared = [load_cached(case, config.cache_dir, minimum=config.patch_size) for case in cases]
        self.case_ids = [case.case_id for case in cases]
        log("%d validation case(s) prepared in %.1f s: %s"
            % (len(cases), time.time() - started, ", ".join(self.case_ids)))
        self.network = build_model(config.model_name, None, padding=config.padding)
        self.predict = network_predictor(self.network)

    def __call__(self, model):
        self.network.set_weights(model.get_weights())
        rows = []
        for case in self.prepared:
            labels = predict_fcn(self.predict, case.image, case.background).labels
            rows.append(dict((region, dice(region_mask(labels, region), region_mask(case.label, region)))
                             for region in REGIONS))
        return rows
