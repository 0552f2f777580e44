"""Analytic FLOP count of the hierarchical network: ``2 * k^3 * C_in * C_out * voxels`` per conv.

Only convolutions are counted (one multiply and one add per weight and output voxel); biases,
batch normalisation, ReLU, concatenation and cropping are left out, as is usual for CNN FLOP
figures. The count follows :func:`densenet3d_keras.models.build_model` layer by layer for both
paddings:

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

from densenet3d_keras.models.presets import (ARCHITECTURES,
                                             NUM_LABEL_CLASSES,
                                             NUM_WT_CLASSES,
                                             PATHWAYS,
                                             Architecture,
                                             margins,
                                             resolve_model_name)

#: One convolution of the count: its name, kernel size, channels and output voxel grid.
ConvCost = namedtuple("ConvCost", ["name", "kernel", "in_channels", "out_channels", "shape"])

KERNEL = 3


def _architecture(name_or_architecture):
    if isinstance(name_or_architecture, Architecture):
        return name_or_architecture
    if isinstance(name_or_architecture, str):
        return ARCHITECTURES[resolve_model_name(name_or_architecture)[0]]
    raise ValueError("expected a model name or an Architecture, got %r" % (name_or_architecture,))


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
            :class:`~densenet3d_keras.models.Architecture`.
        input_size: input size, an integer (cube) or ``(D, H, W)``; each axis must exceed
            twice the margin.
        padding: ``"same"`` or ``"valid"``.

    Returns:
        list of :class:`ConvCost`, pathways in :data:`~densenet3d_keras.models.PATHWAYS` order
        then the head.

    Raises:
        ValueError: unknown model or padding, or an input too small for the margin.
    """
    architecture = _architecture(name_or_architecture)
    if padding not in ("same", "valid"):
        raise ValueError("padding must be 'same' or 'valid', got %r" % (padding,))
    shape = _shape(input_size)
    radius_15, margin = margins(architecture)
    if min(shape) <= 2 * margin:
        raise ValueError("input size %s is too small: every axis must exceed 2 x margin = %d"
                         % (shape, 2 * margin))
    valid = padding == "valid"
    step = (KERNEL - 1) // 2 if valid else 0  # voxels lost per side by one 3x3x3 conv
    costs = []
    tap_channels = []
    for prefix, start, stop in PATHWAYS:
        channels = stop - start
        size = shape
        if architecture.kind == "dense":
            size = _shrink(size, step)
            costs.append(ConvCost(prefix + "_init_conv", KERNEL, channels,
                                  architecture.init_filters, size))
            channels = architecture.init_filters
            taps = []
            for block, (units, growth) in enumerate(zip(architecture.units,
                                                        architecture.growth_rates), 1):
                for unit in range(1, units + 1):
                    size = _shrink(size, step)
                    costs.append(ConvCost("%s_block%d_unit%d_conv" % (prefix, block, unit),
                                          KERNEL, channels, growth, size))
                    channels += growth
                filters = architecture.tap_filters[block - 1]
                tap_size = _shrink(size, margin - radius_15) if valid and block == 1 else size
                costs.append(ConvCost("%s_tap%d_conv" % (prefix, (15, 27)[block - 1]), 1,
                                      channels, filters, tap_size))
                taps.append(filters)
        else:
            taps = []
            for block, filters in enumerate(architecture.plain_filters, 1):
                for unit, count in enumerate(filters, 1):
                    size = _shrink(size, step)
                    costs.append(ConvCost("%s_block%d_unit%d_conv" % (prefix, block, unit),
                                          KERNEL, channels, count, size))
                    channels = count
                taps.append(channels)
        tap_channels.append(taps)
    out = _shrink(shape, margin)
    (flair_15, flair_27), (t1_15, t1_27) = tap_channels
    costs.extend([
        ConvCost("head_wt_conv_15", 1, flair_15, NUM_WT_CLASSES, out),
        ConvCost("head_wt_conv_27", 1, flair_27, NUM_WT_CLASSES, out),
        ConvCost("head_label_conv_15", 1, t1_15 + flair_15, NUM_LABEL_CLASSES, out),
        ConvCost("head_label_conv_27", 1, t1_27 + flair_27, NUM_LABEL_CLASSES, out),
    ])
    return costs


def conv_flops(cost):
    # type: (ConvCost) -> int
    """``2 * k^3 * C_in * C_out * voxels`` of one :class:`ConvCost`."""
    voxels = cost.shape[0] * cost.shape[1] * cost.shape[2]
    return 2 * cost.kernel ** 3 * cost.in_channels * cost.out_channels * voxels


def model_flops(name_or_architecture, input_size, padding="same"):
    # type: (Union[str, Architecture], Union[int, Sequence[int]], str) -> int
    """Floating-point operations (2 x multiply-adds) of one forward pass of one input.

    Args:
        name_or_architecture: a model name or an :class:`~densenet3d_keras.models.Architecture`.
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
    _, margin = margins(_architecture(name_or_architecture))
    out = _shrink(_shape(input_size), margin)
    if min(out) < 1:
        raise ValueError("input size %s is too small for the margin %d" % (input_size, margin))
    return out[0] * out[1] * out[2]


__all__ = ["ConvCost", "conv_costs", "conv_flops", "model_flops", "flops_by_layer",
           "output_voxels"]
