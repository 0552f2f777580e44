"""Analytic FLOP count of the hierarchical network: ``2 * k^3 * C_in * C_out * voxels`` per conv.

Only convolutions are counted (one multiply and one add per weight and output voxel); biases,
batch normalisation, ReLU, concatenation and cropping are left out, as is usual for CNN FLOP
figures. The count walks the architecture description
(:mod:`densenet3d_keras.models.architecture`) as :func:`densenet3d_keras.models.builder.build_model`
does, for both paddings:

* ``"same"``: every pathway convolution runs over the whole input; the head crops the taps
  by the margin before its 1x1x1 convolutions.
* ``"valid"``: each 3x3x3 convolution shrinks its input by 2 per axis and the 15-voxel tap is
  cropped to the kept region before its 1x1x1 convolution, so deeper layers run over smaller
  blocks.

Sizes may be non-cubic (tiles are), given as ``(D, H, W)``.
"""
import numbers
from collections import OrderedDict, namedtuple
from typing import List, Sequence, Union

from densenet3d_keras.models.architecture import KERNEL, STEP, Architecture, block_name, init_name, tap_name
from densenet3d_keras.models.presets import NUM_LABEL_CLASSES, NUM_WT_CLASSES, PATHWAYS, architecture_of

#: One convolution of the count: its name, kernel size, channels and output voxel grid.
ConvCost = namedtuple("ConvCost", ["name", "kernel", "in_channels", "out_channels", "shape"])


def _shape(input_size):
    if isinstance(input_size, numbers.Integral) and not isinstance(input_size, bool):
        return (int(input_size),) * 3
    try:
        shape = tuple(int(s) for s in input_size)
    except (TypeError, ValueError):
        raise ValueError("input_size must be an integer or 3 integers, got %r" % (input_size,))
    if len(shape) != 3:
        raise ValueError("input_size must be an integer or 3 integers, got %r" % (input_size,))
    return shape


def _shrink(shape, voxels):
    return tuple(s - 2 * voxels for s in shape)


def conv_costs(name_or_architecture, input_size, padding="same"):
    # type: (Union[str, Architecture], Union[int, Sequence[int]], str) -> List[ConvCost]
    """Every convolution of one forward pass with its output grid.

    Args:
        name_or_architecture: a model name (``dense24``, ``tiny``, ...) or an
            :class:`~densenet3d_keras.models.architecture.Architecture`.
        input_size: input size, an integer (cube) or ``(D, H, W)``; each axis must exceed
            twice the margin.
        padding: ``"same"`` or ``"valid"``.

    Returns:
        list of :class:`ConvCost`, pathways in :data:`~densenet3d_keras.models.presets.PATHWAYS` order
        then the head.

    Raises:
        ValueError: unknown model or padding, or an input too small for the margin.
    """
    architecture = architecture_of(name_or_architecture)
    if padding not in ("same", "valid"):
        raise ValueError("padding must be 'same' or 'valid', got %r" % (padding,))
    shape = _shape(input_size)
    margin = architecture.margin
    if min(shape) <= 2 * margin:
        raise ValueError("input size %s is too small: every axis must exceed 2 x margin = %d"
                         % (shape, 2 * margin))
    costs = []
    tap_channels = []
    for prefix, start, stop in PATHWAYS:
        tap_channels.append(_pathway_costs(architecture, prefix, stop - start, shape,
                                           padding == "valid", costs))
    out = _shrink(shape, margin)
    (flair_15, flair_27), (t1_15, t1_27) = tap_channels
    costs.extend([
        ConvCost("head_wt_conv_15", 1, flair_15, NUM_WT_CLASSES, out),
        ConvCost("head_wt_conv_27", 1, flair_27, NUM_WT_CLASSES, out),
        ConvCost("head_label_conv_15", 1, t1_15 + flair_15, NUM_LABEL_CLASSES, out),
        ConvCost("head_label_conv_27", 1, t1_27 + flair_27, NUM_LABEL_CLASSES, out),
    ])
    return costs


def _pathway_costs(architecture, prefix, channels, shape, valid, costs):
    """Append one pathway's convolutions to ``costs``; return the channels of its taps."""
    step = STEP if valid else 0  # voxels lost per side by one 3x3x3 conv
    size = shape
    if architecture.init_filters:
        size = _shrink(size, step)
        costs.append(ConvCost(init_name(prefix), KERNEL, channels, architecture.init_filters, size))
        channels = architecture.init_filters
    taps = []
    for index, (block, radius) in enumerate(zip(architecture.blocks, architecture.tap_radii), 1):
        for unit, filters in enumerate(block.unit_filters, 1):
            size = _shrink(size, step)
            costs.append(ConvCost("%s_unit%d_conv" % (block_name(prefix, index), unit), KERNEL,
                                  channels, filters, size))
            channels = channels + filters if block.dense else filters
        if block.tap_filters is None:
            taps.append(channels)
            continue
        # Valid padding crops a shallower tap to the kept region before its 1x1x1 convolution.
        tap_size = _shrink(size, architecture.margin - radius) if valid else size
        costs.append(ConvCost(tap_name(prefix, radius) + "_conv", 1, channels, block.tap_filters, tap_size))
        taps.append(block.tap_filters)
    return taps


def conv_flops(cost):
    # type: (ConvCost) -> int
    """``2 * k^3 * C_in * C_out * voxels`` of one :class:`ConvCost`."""
    voxels = cost.shape[0] * cost.shape[1] * cost.shape[2]
    return 2 * cost.kernel ** 3 * cost.in_channels * cost.out_channels * voxels


def model_flops(name_or_architecture, input_size, padding="same"):
    # type: (Union[str, Architecture], Union[int, Sequence[int]], str) -> int
    """Floating-point operations (2 x multiply-adds) of one forward pass of one input.

    Args:
        name_or_architecture: a model name or an :class:`~densenet3d_keras.models.architecture.Architecture`.
        input_size: input size, an integer (cube) or ``(D, H, W)``.
        padding: ``"same"`` or ``"valid"``.

    Returns:
        int: FLOPs of the convolutions for a batch of one ``(1, D, H, W, 4)`` input.

    Raises:
        ValueError: unknown model or padding, or an input too small for the margin.
    """
    return sum(conv_flops(cost) for cost in conv_costs(name_or_architecture, input_size, padding))


def flops_by_layer(name_or_architecture, input_size, padding="same"):
    # type: (Union[str, Architecture], Union[int, Sequence[int]], str) -> OrderedDict
    """``conv name -> FLOPs`` of one forward pass (see :func:`model_flops`)."""
    return OrderedDict((cost.name, conv_flops(cost))
                       for cost in conv_costs(name_or_architecture, input_size, padding))


def output_voxels(name_or_architecture, input_size):
    # type: (Union[str, Architecture], Union[int, Sequence[int]]) -> int
    """Kept output voxels per forward pass: the input minus the margin on each side."""
    margin = architecture_of(name_or_architecture).margin
    out = _shrink(_shape(input_size), margin)
    if min(out) < 1:
        raise ValueError("input size %s is too small for the margin %d" % (input_size, margin))
    return out[0] * out[1] * out[2]


__all__ = ["ConvCost", "conv_costs", "conv_flops", "model_flops", "flops_by_layer",
           "output_voxels"]
