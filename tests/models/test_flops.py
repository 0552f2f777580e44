"""Analytic FLOP counter: a hand count of a tiny configuration, and the built models' kernels."""
import numpy as np
import pytest

from densenet3d_keras.models.architecture import Architecture, DenseBlock, PlainBlock
from densenet3d_keras.models.flops import conv_costs, flops_by_layer, model_flops, output_voxels
from densenet3d_keras.models.presets import ARCHITECTURES

#: Init conv 2 filters, one unit of growth 1 per block, taps of 3 and 4 filters: margins 2 and 3.
MINI = Architecture(init_filters=2, blocks=(DenseBlock(units=1, growth_rate=1, tap_filters=3),
                                            DenseBlock(units=1, growth_rate=1, tap_filters=4)))


def _head(out_voxels):
    # wt 15: 3 -> 2, wt 27: 4 -> 2, labels 15: (3 + 3) -> 5, labels 27: (4 + 4) -> 5
    return 2 * out_voxels * (3 * 2 + 4 * 2 + 6 * 5 + 8 * 5)


def test_hand_count_same_padding():
    voxels = 10 ** 3  # every pathway conv runs over the whole 10^3 input
    pathway = 2 * voxels * (27 * 2 * 2      # init conv 3x3x3, 2 -> 2
                            + 27 * 2 * 1    # block 1 unit 1, 2 -> 1
                            + 1 * 3 * 3     # tap 15, 3 -> 3
                            + 27 * 3 * 1    # block 2 unit 1, 3 -> 1
                            + 1 * 4 * 4)    # tap 27, 4 -> 4
    assert pathway == 536000
    expected = 2 * pathway + _head(4 ** 3)  # the head crops 3 per side first: 4^3
    assert model_flops(MINI, 10, "same") == expected == 1082752


def test_hand_count_valid_padding():
    pathway = 2 * (27 * 2 * 2 * 8 ** 3    # init conv: 10 -> 8
                   + 27 * 2 * 1 * 6 ** 3  # block 1 unit 1: 8 -> 6
                   + 3 * 3 * 4 ** 3       # tap 15 on the 6^3 block cropped by 3 - 2 = 1: 4^3
                   + 27 * 3 * 1 * 4 ** 3  # block 2 unit 1: 6 -> 4
                   + 4 * 4 * 4 ** 3)      # tap 27 on 4^3
    assert model_flops(MINI, 10, "valid") == 2 * pathway + _head(4 ** 3) == 305728


def test_non_cubic_input_counts_each_axis():
    assert model_flops(MINI, (10, 10, 10), "valid") == model_flops(MINI, 10, "valid")
    costs = conv_costs(MINI, (9, 10, 11), "valid")
    assert costs[0].shape == (7, 8, 9) and costs[-1].shape == (3, 4, 5)
    assert output_voxels(MINI, (9, 10, 11)) == 3 * 4 * 5


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_same_padding_count_matches_the_built_models_kernels(name, keras_session):
    from densenet3d_keras.models.builder import build_model

    size, out = 38, 12
    model = build_model(name, size, padding="same")
    expected = 0
    for weight in model.weights:
        if weight.name.endswith("kernel:0") or weight.name.endswith("kernel"):
            voxels = out ** 3 if weight.name.startswith("head/") else size ** 3
            expected += 2 * int(np.prod(weight.shape)) * voxels
    assert model_flops(name, size, "same") == expected
    assert sum(flops_by_layer(name, size, "same").values()) == expected


@pytest.mark.parametrize("name, same_gflop, valid_gflop", [
    ("dense24", 85.316, 14.708),
])
def test_dense24_patch_costs(name, same_gflop, valid_gflop):
    assert model_flops(name, 38, "same") / 1e9 == pytest.approx(same_gflop, abs=1e-3)
    assert model_flops(name, 38, "valid") / 1e9 == pytest.approx(valid_gflop, abs=1e-3)
    assert model_flops("dense24_nocorrection", 38, "same") == model_flops(name, 38, "same")


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_valid_padding_never_costs_more(name):
    for size in (27, 38, 64):
        assert model_flops(name, size, "valid") <= model_flops(name, size, "same")


@pytest.mark.parametrize("args, match", [
    (("dense24", 26, "same"), "too small"),
    (("dense24", 38, "full"), "padding"),
    (("dense99", 38, "same"), "unknown model"),
    (("dense24", (38, 38), "same"), "3 integers"),
])
def test_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        model_flops(*args)


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_hand_counted_configuration_builds_with_the_counted_output(padding, keras_session):
    from densenet3d_keras.models.builder import build_model

    model = build_model("tiny", 10, padding=padding, architecture=MINI)
    assert model.output_shape[1][1:] == (4, 4, 4, 5)
    assert conv_costs(MINI, 10, padding)[-1].shape == (4, 4, 4)


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_valid_padding_count_matches_the_built_models_layers(name, keras_session):
    """Every counted convolution is a kernel of the valid-padding model, counted on the grid
    Keras gives its layer: the init conv's and a tap's output, a block's last unit's output."""
    from densenet3d_keras.models.builder import build_model

    size = 31
    model = build_model(name, size, padding="valid")
    costs = conv_costs(name, size, "valid")
    kernels = sorted(int(np.prod(w.shape)) for w in model.weights if "kernel" in w.name)
    assert sorted(c.kernel ** 3 * c.in_channels * c.out_channels for c in costs) == kernels
    last_units = dict((cost.name.rsplit("_unit", 1)[0], cost) for cost in costs if "_unit" in cost.name)
    checked = dict(last_units)
    layers = set(layer.name for layer in model.layers)
    checked.update((cost.name if cost.name in layers else cost.name[:-len("_conv")], cost) for cost in costs
                   if "_unit" not in cost.name and not cost.name.startswith("head"))
    for layer, cost in checked.items():
        assert tuple(model.get_layer(layer).output_shape[1:4]) == cost.shape, cost
    assert tuple(model.output_shape[1][1:4]) == costs[-1].shape


def test_a_plain_block_with_a_transition_tap_is_counted_like_the_built_model(keras_session):
    from densenet3d_keras.models.builder import build_model

    architecture = Architecture(None, (PlainBlock([3, 4], tap_filters=5), PlainBlock([6])))
    model = build_model("tiny", 10, padding="same", architecture=architecture)
    expected = 0
    for weight in model.weights:
        if "kernel" in weight.name:
            expected += 2 * int(np.prod(weight.shape)) * (4 ** 3 if weight.name.startswith("head/") else 10 ** 3)
    assert model_flops(architecture, 10, "same") == expected
    names = [cost.name for cost in conv_costs(architecture, 10, "same")]
    assert names[:4] == ["flair_t2_block1_unit1_conv", "flair_t2_block1_unit2_conv", "flair_t2_tap5_conv",
                         "flair_t2_block2_unit1_conv"]
