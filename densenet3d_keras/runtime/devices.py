"""Which devices this process may use: ``-gpu`` as ``CUDA_VISIBLE_DEVICES``."""
import os


def apply_gpu_choice(gpu):
    """Make ``gpu`` (``-gpu``, e.g. ``"0"`` or ``"0,1"``) the visible CUDA devices, once, before
    TensorFlow looks for devices (the thread choice and the strategy do); ``None`` changes
    nothing."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
