"""``--method`` names and the inferer each makes from a resolved run.

A new method or backend is a :class:`~densenet3d_keras.inference.inferers.base.PredictorInferer`
subclass with a ``from_config(config, checkpoint, member)`` class method, and one line of
:data:`METHODS`: the command line offers it (with its help) and the pipeline runs it.
"""
from collections import OrderedDict, namedtuple

from densenet3d_keras.inference.inferers.averaged import AveragedInferer
from densenet3d_keras.inference.inferers.engine import EngineInferer
from densenet3d_keras.inference.inferers.keras_model import Member
from densenet3d_keras.inference.inferers.patch import PatchInferer
from densenet3d_keras.inference.inferers.slabs import SlabInferer
from densenet3d_keras.inference.inferers.tiles import TileInferer

#: ``make(config, checkpoint, member)`` -> the inferer of one checkpoint; ``help`` for
#: ``--method``; ``padding``: the convolution padding of ``--padding auto``.
Method = namedtuple("Method", ["make", "help", "padding"])


def _fcn(config, checkpoint, member=None):
    """Streamed slabs, or tiles where asked (``--tiles``) or where streaming cannot run; with an
    ``--engine`` other than TensorFlow, tiles through that engine."""
    if config.engine != "tensorflow":
        return EngineInferer.from_config(config, checkpoint, member)
    return (SlabInferer if config.stream else TileInferer).from_config(config, checkpoint, member)


METHODS = OrderedDict([
    ("fcn", Method(_fcn, "fully convolutional over the brain's box (default)", "valid")),
    ("patch", Method(PatchInferer.from_config, "the reference 38^3 sliding window (slow, for checking)",
                     "same")),
])


def build_inferer(config):
    """The inferer of a resolved run: its method's for ``checkpoint``, or with ``ensemble``
    checkpoints or ``tta`` an :class:`~densenet3d_keras.inference.inferers.averaged.AveragedInferer`
    of one per checkpoint. Nothing is loaded yet (:meth:`~densenet3d_keras.inference.inferers.base.Inferer.load`).

    Args:
        config: a :class:`~densenet3d_keras.inference.config.PredictConfig`.

    Returns:
        :class:`~densenet3d_keras.inference.inferers.base.Inferer`.

    Raises:
        ValueError: an unknown method.
    """
    if config.method not in METHODS:
        raise ValueError("unknown method %r (choose from %s)" % (config.method, ", ".join(METHODS)))
    make = METHODS[config.method].make
    checkpoints = [config.checkpoint] + list(config.ensemble)
    members = [make(config, checkpoint, Member(index, len(checkpoints), config.n4correction))
               for index, checkpoint in enumerate(checkpoints, 1)]
    if len(members) == 1 and not config.tta:
        return members[0]
    return AveragedInferer(members, flips=config.tta)
