"""Real, labelled BraTS scans (``$DENSENET3D_REAL_BRATS``, default ``../shared/realbrats``):
reading and normalising every case, a few training steps, N4, and segmenting a held-out case.

The generated cases of the other tests have noise everywhere; real skull-stripped scans have
an exact zero background, which these tests make sure the pipeline handles.
"""
import csv
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests import ROOT


@pytest.fixture(scope="module")
def real_cases(real_brats):
    from generators.brats import discover_cases

    cases = discover_cases(real_brats, require_label=True, skip_incomplete=True)
    if not cases:
        pytest.skip("no complete labelled case under %s" % real_brats)
    return cases


def test_every_case_reads_and_normalises_with_its_tumour_inside_the_brain(real_cases):
    from densenet3d_keras.core.brain import brain_mask
    from generators.volumes import load_case_volumes

    for case in real_cases:
        volumes = load_case_volumes(case, with_label=True)
        image, label = volumes.image, volumes.label
        assert image.shape[3] == 4 and label.shape == image.shape[:3], case.case_id
        assert set(np.unique(label)) <= {0, 1, 2, 4} and (label > 0).any(), case.case_id
        brain = brain_mask(image, volumes.background)
        assert 0.05 < brain.mean() < 0.6, case.case_id  # a skull-stripped head in its volume
        assert np.mean(brain[label > 0]) > 0.999, case.case_id
        for channel in range(4):
            raw_zero = image[..., channel] == volumes.background[channel]
            values = image[..., channel][~raw_zero]
            assert abs(values.mean()) < 1e-3 and abs(values.std() - 1) < 1e-3, case.case_id
            assert raw_zero[~brain].all(), "outside the brain every modality is a raw 0"
        del volumes, image, label, brain


def test_a_few_training_steps_with_the_real_data_recipe(real_cases, real_brats, tmp_path):
    import train_keras
    from callbacks.history import read_history

    case_list = tmp_path / "train.txt"
    case_list.write_text("\n".join(case.case_id for case in real_cases[:2]) + "\n")
    save = tmp_path / "run"
    code = train_keras.main(["-mn", "tiny", "--recipe", "real", "-r", real_brats, "--train-list",
                             str(case_list), "-e", "1", "--performance", "2",
                             "--cache-dir", str(tmp_path / "cache"), "-sp", str(save)])
    assert code == 0
    rows = read_history(str(save / "history.csv"))
    assert len(rows) == 1 and np.isfinite(rows[0]["loss"]) and rows[0]["loss"] > 0
    assert (save / "tiny_epoch_001.h5").is_file()


def test_n4_on_a_real_case_sharpens_its_histogram_and_keeps_the_background(real_cases, tmp_path):
    import nibabel as nib

    case = real_cases[0]
    folder = tmp_path / case.case_id
    shutil.copytree(os.path.dirname(case.images["flair"]), str(folder))  # the inputs stay read-only
    done = subprocess.run([sys.executable, "-m", "generators.n4", str(tmp_path), "--modalities", "t1ce",
                           "--iterations", "20x20x10"], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    original = os.path.join(str(folder), os.path.basename(case.images["t1ce"]))
    corrected = original.replace("_t1ce.nii.gz", "_t1ce_corrected.nii.gz")
    before = np.asarray(nib.load(original).dataobj).astype(np.float32)
    after = np.asarray(nib.load(corrected).dataobj).astype(np.float32)
    brain = before > 0
    np.testing.assert_array_equal(after > 0, brain)

    def entropy(volume):
        values = np.log(volume[brain])
        counts, _ = np.histogram(values, bins=200, range=tuple(np.percentile(values, [0.5, 99.5])))
        p = counts[counts > 0] / float(counts.sum())
        return float(-(p * np.log(p)).sum())

    assert entropy(after) < entropy(before) - 0.02


#: Fold 0 of the cross-validation (tests/data/real/README.md) and a case it never saw.
FOLD_CHECKPOINT = os.path.join(ROOT, "tests", "data", "real", "dense24_cv_fold0.h5")
HELD_OUT = "Brats18_2013_20_1"
#: Its held-out Dice WT / TC / ET as cross-validation measured them (0.862 / 0.788 / 0.844),
#: less a margin for another machine's arithmetic.
HELD_OUT_FLOOR = {"dice_wt": 0.82, "dice_tc": 0.74, "dice_et": 0.80}


def test_a_cross_validation_checkpoint_segments_its_held_out_case(real_brats, tmp_path, capsys):
    import nibabel as nib

    from densenet3d_keras.core.brain import brain_mask
    from densenet3d_keras.core.compat import clear_session
    from densenet3d_keras.cli import predict as predict_keras
    from generators.brats import load_case
    from generators.volumes import load_case_volumes

    folder = os.path.join(real_brats, HELD_OUT)
    if not os.path.isdir(folder):
        pytest.skip("%s is not under %s" % (HELD_OUT, real_brats))
    out = str(tmp_path / "out")
    clear_session()
    code = predict_keras.main(["-m", FOLD_CHECKPOINT, "-i", folder, "-o", out, "--evaluate"])
    clear_session()
    stdout, err = capsys.readouterr()
    assert code == 0, err[-2000:]
    with open(os.path.join(out, "metrics.csv")) as handle:
        row = next(csv.DictReader(handle))
    for name, floor in HELD_OUT_FLOOR.items():
        assert float(row[name]) >= floor, (name, row[name], stdout)
    labels = np.asarray(nib.load(os.path.join(out, HELD_OUT + ".nii.gz")).dataobj)
    volumes = load_case_volumes(load_case(folder))
    brain = brain_mask(volumes.image, volumes.background)
    assert (labels > 0).sum() > 10000
    assert not (labels[~brain] > 0).any(), "tumour outside the brain"


@pytest.mark.parametrize("engine, precision", [("onnxruntime", "float32"), ("openvino", "bf16")])
def test_the_onnx_graph_of_fold_0_computes_its_keras_logits_on_a_real_tile(real_brats, engine, precision):
    """A 48^3 tile centred on the held-out case's tumour: float32 logits within 1e-5 of Keras's
    and the same labels; bf16 labels equal on at least 99% of the tile's outputs."""
    pytest.importorskip("onnx", reason="onnx not installed (pip install '.[onnx]')")
    pytest.importorskip(engine, reason="%s not installed (pip install '.[%s]')"
                        % (engine, "openvino" if engine == "openvino" else "onnx"))
    from densenet3d_keras.core.compat import clear_session
    from densenet3d_keras.inference.engines import engine_predictor
    from densenet3d_keras.models.loading import load_model
    from generators.brats import load_case
    from generators.volumes import load_case_volumes

    folder = os.path.join(real_brats, HELD_OUT)
    if not os.path.isdir(folder):
        pytest.skip("%s is not under %s" % (HELD_OUT, real_brats))
    volumes = load_case_volumes(load_case(folder))
    centre = [int(c.mean()) for c in np.nonzero(volumes.label)]
    tile = volumes.image[tuple(slice(c - 24, c + 24) for c in centre)][None]
    clear_session()
    model = load_model(FOLD_CHECKPOINT, "dense24", None, "valid")[0]
    want = np.asarray(model(tile, training=False)[1])
    got = engine_predictor(model, "dense24", engine, precision)(tile)
    clear_session()
    agree = np.mean(got.argmax(-1) == want.argmax(-1))
    if precision == "float32":
        assert np.max(np.abs(got - want)) <= 1e-5 and agree == 1.0, (np.max(np.abs(got - want)), agree)
    else:
        assert agree >= 0.99, agree
    assert len(np.unique(want.argmax(-1))) > 1  # the tile holds tumour and background
