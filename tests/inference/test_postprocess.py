"""Tests for densenet3d_keras.inference.postprocess on hand-built label maps."""
import json
import os

import numpy as np
import pytest

from densenet3d_keras.inference import postprocess
from densenet3d_keras.inference.postprocess import PostprocessSettings

SHAPE = (30, 30, 30)


def box(label, lower, upper, value):
    label[tuple(slice(a, b) for a, b in zip(lower, upper))] = value
    return label


def tumour():
    """A 10^3 tumour (edema, a 6^3 core of necrosis holding a 2^3 enhancing cube) and strays.

    Strays: a 2^3 edema blob (8 voxels, WT); a 10 x 10 x 6 edema slab (600 voxels) holding a
    3^3 necrosis blob (27 voxels, TC) and, apart from it, a lone 2^3 enhancing spot (8 voxels,
    an ET component that is a core component of its own); and on the main core's necrosis an
    enhancing voxel pair (2 voxels, ET touching necrosis).
    """
    label = np.zeros(SHAPE, np.uint8)
    box(label, (2, 2, 2), (12, 12, 12), 2)
    box(label, (4, 4, 4), (10, 10, 10), 1)
    box(label, (6, 6, 6), (8, 8, 8), 4)
    box(label, (25, 25, 25), (27, 27, 27), 2)           # stray WT, 8 voxels
    box(label, (14, 2, 2), (24, 12, 8), 2)              # a 600-voxel edema slab holding:
    box(label, (16, 4, 4), (19, 7, 7), 1)               # small core, 27 voxels
    box(label, (17, 8, 4), (19, 10, 6), 4)              # lone enhancing spot, 8 voxels
    box(label, (9, 4, 4), (10, 5, 5), 4)                # enhancing on the necrosis: 1 voxel ...
    box(label, (9, 5, 4), (10, 6, 5), 4)                # ... and its neighbour: 2 voxels
    return label


def test_remove_small_whole_tumour_components():
    label = tumour()
    # The stray edema blob has 8 voxels: kept at min size 8 (only smaller ones go), removed at 9.
    assert np.array_equal(postprocess.remove_small_components(label, "wt", 8), label)
    out = postprocess.remove_small_components(label, "wt", 9)
    assert (out[25:27, 25:27, 25:27] == 0).all()
    changed = out != label
    assert changed.sum() == 8
    assert np.array_equal(postprocess.remove_small_components(label, "wt", 0), label)
    # The whole slab (600 edema + core voxels) goes with min size 601, with its core and spot.
    out = postprocess.remove_small_components(label, "wt", 601)
    assert (out[14:24] == 0).all() and (out[2:12, 2:12, 2:12] == label[2:12, 2:12, 2:12]).all()


def test_remove_small_core_components_become_edema():
    label = tumour()
    # The slab holds a 27-voxel necrosis cube and, apart from it, an 8-voxel enhancing spot
    # (its own core component). Min size 28 turns both into edema; the main core (216) stays.
    out = postprocess.remove_small_components(label, "tc", 28)
    assert (out[16:19, 4:7, 4:7] == 2).all() and (out[17:19, 8:10, 4:6] == 2).all()
    assert np.array_equal(out > 0, label > 0)  # the whole tumour is unchanged
    assert np.array_equal(out[:13], label[:13])
    # Min size 27: the 27-voxel core stays, the 8-voxel spot goes.
    out = postprocess.remove_small_components(label, "tc", 27)
    assert (out[16:19, 4:7, 4:7] == 1).all() and (out[17:19, 8:10, 4:6] == 2).all()


def test_remove_small_enhancing_components_take_the_surrounding_core_label():
    label = tumour()
    # Min size 9: the 2-voxel pair on the necrosis becomes necrosis (the core is unchanged),
    # the lone 8-voxel spot in edema becomes edema (it leaves the core); the 2^3 = 8 voxel
    # enhancing cube inside the main core becomes necrosis as well.
    out = postprocess.remove_small_enhancing(label, 9)
    assert (out[9, 4:6, 4] == 1).all()
    assert (out[17:19, 8:10, 4:6] == 2).all()
    assert (out[6:8, 6:8, 6:8] == 1).all()
    assert not (out == 4).any()
    assert np.array_equal(out > 0, label > 0)
    core_before = np.isin(label, (1, 4))
    core_after = np.isin(out, (1, 4))
    assert (core_before & ~core_after).sum() == 8 and not (core_after & ~core_before).any()
    # Min size 3 removes only the pair.
    out = postprocess.remove_small_enhancing(label, 3)
    assert (out == 4).sum() == (label == 4).sum() - 2 and (out[9, 4:6, 4] == 1).all()


def test_enhancing_to_necrosis_below_a_total_volume():
    label = tumour()
    total = int((label == 4).sum())  # 8 + 8 + 2 = 18
    assert total == 18
    assert np.array_equal(postprocess.enhancing_to_necrosis(label, 18), label)  # not < 18
    out = postprocess.enhancing_to_necrosis(label, 19)
    assert not (out == 4).any() and np.array_equal(out == 1, np.isin(label, (1, 4)))
    assert np.array_equal(postprocess.enhancing_to_necrosis(label, None), label)


def test_apply_runs_the_steps_in_order_and_leaves_the_input_alone():
    label = tumour()
    original = label.copy()
    settings = PostprocessSettings({"wt": 9, "tc": 28, "et": 3}, et_to_necrosis_below=9)
    out = postprocess.apply_postprocessing(label, settings)
    assert np.array_equal(label, original)
    expected = original.copy()
    expected[25:27, 25:27, 25:27] = 0            # WT: the 8-voxel blob
    expected[16:19, 4:7, 4:7] = 2                # TC: the 27-voxel core
    expected[17:19, 8:10, 4:6] = 2              # TC: the 8-voxel lone spot
    expected[9, 4:6, 4] = 1                      # ET: the pair
    expected[6:8, 6:8, 6:8] = 1                  # 8 enhancing voxels left < 9: to necrosis
    assert np.array_equal(out, expected)
    assert out.dtype == np.uint8
    assert np.array_equal(postprocess.apply_postprocessing(label, PostprocessSettings()), label)


def test_components_are_26_connected():
    label = np.zeros(SHAPE, np.uint8)
    label[5, 5, 5] = label[6, 6, 6] = 2  # touching only at a corner: one 2-voxel component
    assert np.array_equal(postprocess.remove_small_components(label, "wt", 2), label)
    assert not postprocess.remove_small_components(label, "wt", 3).any()


def test_settings_json_round_trip(tmp_path):
    path = str(tmp_path / "postprocessing.json")
    settings = PostprocessSettings({"wt": 250, "tc": 0, "et": 25}, et_to_necrosis_below=100)
    postprocess.save_settings(path, settings, validation={"num_cases": 2})
    with open(path) as handle:
        payload = json.load(handle)
    assert payload == {"min_size": {"wt": 250, "tc": 0, "et": 25}, "et_to_necrosis_below": 100,
                       "validation": {"num_cases": 2}}
    loaded = postprocess.load_settings(path)
    assert loaded == settings and loaded.to_dict() == settings.to_dict()
    assert [name for name in os.listdir(str(tmp_path))] == ["postprocessing.json"]
    # Left-out entries are off.
    with open(path, "w") as handle:
        handle.write('{"min_size": {"et": 10}}')
    assert postprocess.load_settings(path) == PostprocessSettings({"wt": 0, "tc": 0, "et": 10})
    assert PostprocessSettings().is_identity() and not loaded.is_identity()


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ('{"min_size": {"wt": 10}, "dilate": 2}', "unknown key(s) dilate"),
    ('{"min_size": {"edema": 10}}', "unknown region(s) in min_size: edema"),
    ('{"min_size": {"wt": -1}}', "min_size.wt must be a whole number"),
    ('{"min_size": {"wt": 2.5}}', "min_size.wt must be a whole number"),
    ('{"min_size": {"tc": true}}', "min_size.tc must be a whole number"),
    ('{"min_size": [1, 2, 3]}', "min_size must be an object"),
    ('{"et_to_necrosis_below": "100"}', "et_to_necrosis_below must be a whole number"),
    ('[1, 2]', "must be a JSON object"),
])
def test_bad_settings_files_name_the_file(tmp_path, text, message):
    path = str(tmp_path / "settings.json")
    with open(path, "w") as handle:
        handle.write(text)
    with pytest.raises(ValueError) as error:
        postprocess.load_settings(path)
    assert message in str(error.value) and path in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_settings_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="settings not found"):
        postprocess.load_settings(str(tmp_path / "none.json"))
