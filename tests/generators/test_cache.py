"""The memory-mapped preprocessing cache."""
import os
import time

import pytest

import nibabel as nib
import numpy as np

from generators.brats import load_case
from generators.cache import load_cached
from generators.synthetic import write_case
from generators.volumes import load_case_volumes


def test_cache_matches_fresh_load_and_is_memory_mapped(tmp_path):
    folder = write_case(str(tmp_path / "data"), "Brats17_G_1_1", shape=(40, 40, 40), seed=6)
    case = load_case(folder, require_label=True)
    cached = load_cached(case, str(tmp_path / "cache"))
    fresh = load_case_volumes(case)
    assert isinstance(cached.image, np.memmap)
    np.testing.assert_array_equal(np.asarray(cached.image), fresh.image)
    np.testing.assert_array_equal(np.asarray(cached.label), fresh.label)
    flat = fresh.label.reshape(-1)
    np.testing.assert_array_equal(cached.positives, np.flatnonzero(flat > 0))
    np.testing.assert_array_equal(cached.negatives, np.flatnonzero((flat == 0) & fresh.brain.reshape(-1)))


def test_cache_reused_then_invalidated_when_a_source_changes(tmp_path):
    folder = write_case(str(tmp_path / "data"), "Brats17_H_1_1", shape=(40, 40, 40), seed=7)
    case = load_case(folder, require_label=True)
    cache = str(tmp_path / "cache")
    load_cached(case, cache)
    entry = [os.path.join(cache, e) for e in os.listdir(cache)]
    assert len(entry) == 1
    stamp = os.path.getmtime(os.path.join(entry[0], "meta.json"))
    load_cached(case, cache)
    assert os.path.getmtime(os.path.join(entry[0], "meta.json")) == stamp  # reused
    # Change the label map: the cache must follow.
    seg_path = case.label
    seg = np.asanyarray(nib.load(seg_path).dataobj).copy()
    seg[:] = 0
    seg[20, 20, 20] = 1
    time.sleep(0.01)
    nib.save(nib.Nifti1Image(seg, nib.load(seg_path).affine), seg_path)
    again = load_cached(case, cache)
    assert again.positives.tolist() == [np.ravel_multi_index((20, 20, 20), (40, 40, 40))]


def test_small_volume_padded_to_patch(tmp_path):
    folder = write_case(str(tmp_path / "data"), "Brats17_I_1_1", shape=(30, 44, 24), seed=8)
    cached = load_cached(load_case(folder, require_label=True), str(tmp_path / "cache"))
    assert cached.shape == (38, 44, 38)
    assert cached.offset == (4, 0, 7)
    np.testing.assert_allclose(cached.image[0, 0, 0], cached.background)


def test_interrupted_build_leaves_no_valid_entry(tmp_path, monkeypatch):
    folder = write_case(str(tmp_path / "data"), "Brats17_J_1_1", shape=(40, 40, 40), seed=9)
    case = load_case(folder, require_label=True)
    cache = str(tmp_path / "cache")
    import generators.cache as cache_module

    def failing_save(*args, **kwargs):
        raise KeyboardInterrupt()

    monkeypatch.setattr(cache_module.np, "save", failing_save)
    try:
        load_cached(case, cache)
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()
    assert os.listdir(cache) == []
    assert load_cached(case, cache).image.shape == (40, 40, 40, 4)


def _entry(cache):
    (name,) = os.listdir(cache)
    return os.path.join(cache, name)


@pytest.mark.parametrize("damage", ["truncate", "delete", "garbage"])
def test_damaged_entry_is_rebuilt_with_a_log_line(tmp_path, damage):
    folder = write_case(str(tmp_path / "data"), "Brats17_K_1_1", shape=(40, 40, 40), seed=10)
    case = load_case(folder, require_label=True)
    cache = str(tmp_path / "cache")
    load_cached(case, cache)
    image_path = os.path.join(_entry(cache), "image.npy")
    if damage == "truncate":  # a disk that filled up, a copy cut short
        with open(image_path, "r+b") as handle:
            handle.truncate(os.path.getsize(image_path) // 2)
    elif damage == "delete":
        os.remove(image_path)
    else:
        with open(image_path, "wb") as handle:
            handle.write(b"not an npy file")
    lines = []
    cached = load_cached(case, cache, log=lines.append)
    assert len(lines) == 1
    assert lines[0].startswith("preprocessing cache entry of case Brats17_K_1_1 is damaged (%s"
                               % image_path)
    assert lines[0].endswith("); rebuilding it")
    fresh = load_case_volumes(case)
    np.testing.assert_array_equal(np.asarray(cached.image), fresh.image)
    np.testing.assert_array_equal(np.asarray(cached.label), fresh.label)
    lines = []
    load_cached(case, cache, log=lines.append)  # repaired for good
    assert lines == []


def test_damaged_entry_that_cannot_be_rebuilt_names_the_cache(tmp_path, monkeypatch, capsys):
    folder = write_case(str(tmp_path / "data"), "Brats17_K_2_1", shape=(40, 40, 40), seed=11)
    case = load_case(folder, require_label=True)
    cache = str(tmp_path / "cache")
    load_cached(case, cache)
    label_path = os.path.join(_entry(cache), "label.npy")
    with open(label_path, "r+b") as handle:
        handle.truncate(200)
    import generators.cache as cache_module

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache_module, "_build", full_disk)
    with pytest.raises(OSError) as error:
        load_cached(case, cache)
    assert str(error.value) == ("cannot write the preprocessing cache %s: [Errno 28] No space left "
                                "on device" % cache)
    err = capsys.readouterr().err  # the default log line, on stderr
    assert "is damaged (%s" % label_path in err and "rebuilding it" in err

    def no_op(case, entry, stats, minimum, log=None):  # a "rebuild" that does not repair the entry
        with open(os.path.join(entry, "meta.json")) as handle:
            import json

            return json.load(handle)

    monkeypatch.setattr(cache_module, "_build", no_op)
    with pytest.raises(OSError, match="preprocessing cache entry %s cannot be read even after "
                                      "rebuilding it: %s" % (_entry(cache), label_path)):
        load_cached(case, cache, log=lambda line: None)
