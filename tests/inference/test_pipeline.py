"""Tests for densenet3d_keras.inference.pipeline: postprocessing settings in the prediction run."""
import json
import os

import nibabel as nib
import numpy as np
import pytest

from densenet3d_keras.cli import predict as predict_keras
from densenet3d_keras.inference import pipeline
from densenet3d_keras.inference.config import resolve
from densenet3d_keras.inference.postprocess import PostprocessSettings, apply_postprocessing
from densenet3d_keras.inference.predict import Segmentation
from generators import synthetic
from generators.brats import load_case
from generators.volumes import load_case_volumes

SHAPE = (32, 32, 24)
SETTINGS = {"min_size": {"wt": 9, "tc": 0, "et": 0}, "et_to_necrosis_below": 50}


@pytest.fixture
def case_and_settings(tmp_path):
    """A BraTS 2023 layout synthetic case and a settings file."""
    folder = synthetic.write_case(str(tmp_path / "data"), "BraTS-GLI-00007-000", shape=SHAPE,
                                  seed=7, layout="brats2023")
    path = str(tmp_path / "postprocessing.json")
    with open(path, "w") as handle:
        json.dump(SETTINGS, handle)
    return folder, path


def config_for(argv):
    return predict_keras.resolve(predict_keras.build_parser().parse_args(argv))


def network_labels():
    """A label map as a network might give it: a tumour, a stray 2^3 blob, 8 enhancing voxels."""
    labels = np.zeros(SHAPE, np.uint8)
    labels[8:18, 8:18, 6:16] = 2
    labels[10:16, 10:16, 8:14] = 1
    labels[12:14, 12:14, 10:12] = 4
    labels[26:28, 26:28, 2:4] = 2
    return labels


def segmentation_of(labels):
    """A :class:`Segmentation` whose argmax is ``labels`` (logit 1 for the label, 0 elsewhere)."""
    logits = np.zeros(SHAPE + (5,), np.float32)
    for value in (0, 1, 2, 4):
        logits[..., value][labels == value] = 1.0
    return Segmentation(logits, np.ones(SHAPE, bool), "fcn", SHAPE, 1, 0.0)


def test_resolve_reads_the_settings_into_the_configuration(case_and_settings, tmp_path):
    folder, path = case_and_settings
    config = config_for(["-m", str(tmp_path / "ckpt.h5"), "-i", folder, "-o",
                         str(tmp_path / "out"), "--postprocess", path])
    assert config.postprocess == path
    assert config.postprocess_settings == PostprocessSettings(
        SETTINGS["min_size"], SETTINGS["et_to_necrosis_below"]).to_dict()
    assert json.loads(json.dumps(config.to_dict()))["postprocess_settings"]["min_size"]["wt"] == 9
    plain = config_for(["-m", "x.h5", "-i", folder, "-o", str(tmp_path / "out")])
    assert plain.postprocess is None and plain.postprocess_settings is None


def test_final_labels_and_written_file_are_postprocessed(case_and_settings, tmp_path):
    folder, path = case_and_settings
    out = str(tmp_path / "out")
    os.makedirs(out)
    config = config_for(["-m", "x.h5", "-i", folder, "-o", out, "--postprocess", path])
    labels = network_labels()
    expected = labels.copy()
    expected[26:28, 26:28, 2:4] = 0                  # the 8-voxel blob (< 9)
    expected[12:14, 12:14, 10:12] = 1                # 8 enhancing voxels (< 50) -> necrosis
    assert np.array_equal(pipeline.final_labels(config, labels), expected)
    assert np.array_equal(apply_postprocessing(labels, PostprocessSettings(
        SETTINGS["min_size"], SETTINGS["et_to_necrosis_below"])), expected)

    case = load_case(folder)
    volumes = load_case_volumes(case, with_label=False)
    written = pipeline.write_case(config, case, volumes, segmentation_of(labels), "tiny fcn")
    on_disk = np.asarray(nib.load(written[0]).dataobj)
    assert np.array_equal(on_disk, expected)  # BraTS 2023 file: no 4 (nor 3) left here
    plain = config_for(["-m", "x.h5", "-i", folder, "-o", out])
    assert pipeline.final_labels(plain, labels) is labels
    pipeline.write_case(plain, case, volumes, segmentation_of(labels), "tiny fcn")
    on_disk = np.asarray(nib.load(written[0]).dataobj)
    assert np.array_equal(on_disk, np.where(labels == 4, 3, labels))


@pytest.mark.parametrize("flags, stream", [
    ([], True),                       # fcn streams its box by default
    (["--tiles"], False),
    (["--method", "patch"], False),
])
def test_fcn_streams_unless_tiles_or_patches_are_asked_for(flags, stream):
    config = config_for(["-m", "x.h5", "-i", "case", "-o", "out", "--slab", "8", "--shape-reuse", "4"] + flags)
    assert config.stream is stream and config.slab == 8 and config.shape_reuse == 4
    assert "tiles" not in config.to_dict()


def test_graph_mode_uses_tiles(monkeypatch):
    from densenet3d_keras.core import compat

    monkeypatch.setattr(compat, "graph_mode", lambda: True)
    values = dict(vars(predict_keras.build_parser().parse_args(["-m", "x.h5", "-i", "case", "-o", "out"])))
    values.pop("demo")
    assert resolve(values).stream is False


def test_brats2024_output_labels_refused(case_and_settings, tmp_path):
    # The network has no resection-cavity class: no BraTS 2024 label maps are written.
    folder, _ = case_and_settings
    with pytest.raises(ValueError, match="brats2024: this network has no resection-cavity class"):
        config_for(["-m", str(tmp_path / "ckpt.h5"), "-i", folder, "-o", str(tmp_path / "out"),
                    "--label-convention", "brats2024"])
