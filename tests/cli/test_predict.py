"""densenet3d_keras.cli.predict (predict_keras.py) end to end on tiny synthetic datasets and checkpoints."""
import csv
import os
import shutil

import nibabel as nib
import numpy as np
import pytest

from densenet3d_keras.cli import predict as predict_keras
from generators import synthetic
from tests.cli.predict_runs import error_line as _error_line, run_predict as _run

SHAPE = (48, 48, 40)
SMALL_SHAPE = (44, 30, 24)  # two axes shorter than the 38-voxel patch


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Datasets (BraTS 2017 and 2023 layouts, one small case) and tiny checkpoints."""
    from densenet3d_keras.models.checkpoints import save_checkpoint
    from densenet3d_keras.core.compat import clear_session, keras
    from densenet3d_keras.models.builder import build_model
    from densenet3d_keras.models.objectives import compile_model

    base = tmp_path_factory.mktemp("predict")
    paths = {"root": str(base / "brats17"), "root23": str(base / "brats23"),
             "small": str(base / "small"), "checkpoints": str(base / "checkpoints")}
    synthetic.write_dataset(paths["root"], n_cases=2, shape=SHAPE, seed=4, splits=(0.5, 0.0, 0.5))
    synthetic.write_dataset(paths["root23"], n_cases=1, shape=SHAPE, seed=5, layout="brats2023",
                            splits=(1.0, 0.0, 0.0))
    synthetic.write_case(paths["small"], "Brats17_SMALL_1", shape=SMALL_SHAPE, seed=6)
    os.makedirs(paths["checkpoints"])
    clear_session()
    keras.utils.set_random_seed(1)
    model = compile_model(build_model("tiny", 38))
    paths["checkpoint"] = os.path.join(paths["checkpoints"], "tiny_epoch_001.h5")
    save_checkpoint(model, paths["checkpoint"], 1, "tiny", "same")
    # A checkpoint that claims to be dense24 but holds tiny weights.
    paths["liar"] = str(base / "liar_epoch_001.h5")
    save_checkpoint(model, paths["liar"], 1, "dense24", "same")
    clear_session()
    return paths


def _case_ids(root, list_name):
    with open(os.path.join(root, list_name)) as handle:
        return [line.strip() for line in handle if line.strip()]


def _flair(root, case_id, separator="_", key="flair"):
    return nib.load(os.path.join(root, case_id, case_id + separator + key + ".nii.gz"))


def _assert_same_grid(image, flair):
    assert image.shape[:3] == flair.shape
    np.testing.assert_allclose(image.affine, flair.affine)
    for getter in ("get_qform", "get_sform"):
        matrix, code = getattr(image.header, getter)(coded=True)
        reference, reference_code = getattr(flair.header, getter)(coded=True)
        assert code == reference_code
        np.testing.assert_allclose(matrix, reference, atol=1e-6)
    assert image.header.get_zooms()[:3] == flair.header.get_zooms()[:3]


def test_fcn_writes_labels_probabilities_and_metrics(workspace, tmp_path, capsys):
    out = str(tmp_path / "out")
    code, stdout, err = _run(["-m", workspace["checkpoints"], "-mn", "tiny", "-r", workspace["root"],
                              "--list", "test.txt", "-o", out, "--save-probabilities",
                              "--evaluate"], capsys)
    assert code == 0, err
    (case_id,) = _case_ids(workspace["root"], "test.txt")
    labels_image = nib.load(os.path.join(out, case_id + ".nii.gz"))
    _assert_same_grid(labels_image, _flair(workspace["root"], case_id))
    assert labels_image.get_data_dtype() == np.uint8
    labels = np.asarray(labels_image.dataobj)
    assert set(np.unique(labels).tolist()) <= {0, 1, 2, 4}
    assert 4 in labels, "the test model should predict every label somewhere"
    probabilities = nib.load(os.path.join(out, case_id + "_probabilities.nii.gz"))
    assert probabilities.shape == SHAPE + (5,) and probabilities.get_data_dtype() == np.float32
    _assert_same_grid(probabilities, _flair(workspace["root"], case_id))
    p = np.asarray(probabilities.dataobj)
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-5)
    assert (p[..., 3] == 0).all(), "class 3 is no label"
    np.testing.assert_array_equal(np.argmax(p, axis=-1), labels)  # the file's argmax is the label map
    with open(os.path.join(out, "metrics.csv")) as handle:
        rows = list(csv.DictReader(handle))
    assert [row["case"] for row in rows] == [case_id]
    assert os.path.isfile(os.path.join(out, "summary.json"))
    assert "Dice WT" in stdout and "planes" in err  # the box streamed in slabs (default)
    assert "streamed in slabs of 12 planes" in stdout
    assert not [name for name in os.listdir(out) if name.startswith(".")], "temporary files left"
    tiles = str(tmp_path / "tiles")
    code, stdout, err = _run(["-m", workspace["checkpoints"], "-mn", "tiny", "-r", workspace["root"],
                              "--list", "test.txt", "-o", tiles, "--tiles", "--tile-size", "40"], capsys)
    assert code == 0, err
    assert "tiles of" in stdout and "tiles" in err
    np.testing.assert_array_equal(np.asarray(nib.load(os.path.join(tiles, case_id + ".nii.gz")).dataobj),
                                  labels)


def test_brats2023_convention_maps_enhancing_tumour_to_3(workspace, tmp_path, capsys):
    (case_id,) = _case_ids(workspace["root23"], "train.txt")
    results = {}
    for convention in ("auto", "brats2017"):
        out = str(tmp_path / convention)
        code, _, err = _run(["-m", workspace["checkpoint"], "-mn", "tiny", "-i",
                             os.path.join(workspace["root23"], case_id), "-o", out,
                             "--label-convention", convention], capsys)
        assert code == 0, err
        image = nib.load(os.path.join(out, case_id + ".nii.gz"))
        _assert_same_grid(image, _flair(workspace["root23"], case_id, "-", "t2f"))
        results[convention] = np.asarray(image.dataobj)
    new, old = results["auto"], results["brats2017"]  # auto = the case's own: brats2023
    assert set(np.unique(new).tolist()) <= {0, 1, 2, 3} and 4 in old
    np.testing.assert_array_equal(new == 3, old == 4)
    np.testing.assert_array_equal(new[old != 4], old[old != 4])


@pytest.mark.parametrize("method", ["fcn", "patch"])
def test_volume_smaller_than_the_patch_is_padded_and_predicted(workspace, tmp_path, capsys, method):
    out = str(tmp_path / method)
    case_dir = os.path.join(workspace["small"], "Brats17_SMALL_1")
    code, _, err = _run(["-m", workspace["checkpoint"], "-mn", "tiny", "-i", case_dir, "-o", out,
                         "--method", method, "--label-convention", "brats2023", "--evaluate"],
                        capsys)
    assert code == 0, err
    image = nib.load(os.path.join(out, "Brats17_SMALL_1.nii.gz"))
    _assert_same_grid(image, _flair(workspace["small"], "Brats17_SMALL_1"))
    labels = np.asarray(image.dataobj)
    assert set(np.unique(labels).tolist()) <= {0, 1, 2, 3}
    assert os.path.isfile(os.path.join(out, "metrics.csv"))


def test_evaluate_takes_the_challenge_settings_of_evaluate_keras(workspace, tmp_path, capsys):
    import json

    case_dir = os.path.join(workspace["small"], "Brats17_SMALL_1")
    for challenge in ("GLI", "MET"):
        out = str(tmp_path / challenge)
        code, _, err = _run(["-m", workspace["checkpoint"], "-mn", "tiny", "-i", case_dir, "-o", out, "--evaluate",
                             "--challenge", challenge, "--brats2024-legacy-metrics", "official"], capsys)
        assert code == 0, err
        with open(os.path.join(out, "summary.json")) as stream:
            summary = json.load(stream)
        assert summary["challenge"] == challenge and summary["brats2024_legacy_metrics"] == "official"
        with open(os.path.join(out, "metrics.csv")) as stream:
            header, row = stream.read().splitlines()[:2]
        assert dict(zip(header.split(","), row.split(",")))["challenge"] == "%s-2023" % challenge
    with pytest.raises(SystemExit):
        _run(["-m", workspace["checkpoint"], "-i", case_dir, "-o", str(tmp_path / "x"), "--evaluate",
              "--challenge", "XYZ"], capsys)


def test_n4_corrected_files_are_read_with_nc_true(workspace, tmp_path, capsys):
    (case_id,) = _case_ids(workspace["root"], "test.txt")
    root = str(tmp_path / "root")
    shutil.copytree(os.path.join(workspace["root"], case_id), os.path.join(root, case_id))
    out = str(tmp_path / "out")
    argv = ["-m", workspace["checkpoint"], "-mn", "tiny", "-r", root, "-o", out, "-nc", "true"]
    code, _, err = _run(argv, capsys)
    assert "error: N4-corrected file missing" in _error_line(code, err)
    assert not os.path.exists(out)
    for key in ("flair", "t2", "t1", "t1ce"):  # "corrected" copies with a zero rim
        source = os.path.join(root, case_id, "%s_%s.nii.gz" % (case_id, key))
        image = nib.load(source)
        data = np.asarray(image.dataobj).copy()
        data[:2] = 0
        nib.save(nib.Nifti1Image(data, image.affine, image.header),
                 source.replace(".nii.gz", "_corrected.nii.gz"))
    code, stdout, err = _run(argv, capsys)
    assert code == 0, err
    assert '"n4correction": true' in stdout
    assert os.path.isfile(os.path.join(out, case_id + ".nii.gz"))


def test_checkpoint_of_another_model_is_refused(workspace, tmp_path, capsys):
    out = str(tmp_path / "out")
    code, _, err = _run(["-m", workspace["checkpoints"], "-mn", "dense24", "-r", workspace["root"],
                         "-o", out], capsys)
    line = _error_line(code, err)
    assert "holds a tiny model, not dense24" in line
    assert not os.path.exists(out)


def test_weights_that_do_not_fit_are_refused(workspace, tmp_path, capsys):
    out = str(tmp_path / "out")
    code, _, err = _run(["-m", workspace["liar"], "-mn", "dense24", "-r", workspace["root"],
                         "-o", out], capsys)
    assert "do not fit a dense24 model" in _error_line(code, err)
    assert not os.path.exists(out)


def test_unwritable_output_folder_is_refused(workspace, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text(u"not a folder")
    code, _, err = _run(["-m", workspace["checkpoint"], "-mn", "tiny", "-r", workspace["root"],
                         "-o", str(blocker / "out")], capsys)
    assert "cannot create output folder" in _error_line(code, err)
    code, _, err = _run(["-m", workspace["checkpoint"], "-mn", "tiny", "-r", workspace["root"],
                         "-o", str(blocker)], capsys)
    assert "is not a folder" in _error_line(code, err)


def test_missing_modality_is_refused_before_any_output(workspace, tmp_path, capsys):
    (case_id,) = _case_ids(workspace["root"], "test.txt")
    case_dir = str(tmp_path / case_id)
    shutil.copytree(os.path.join(workspace["root"], case_id), case_dir)
    os.remove(os.path.join(case_dir, case_id + "_t1.nii.gz"))
    out = str(tmp_path / "out")
    code, _, err = _run(["-m", workspace["checkpoint"], "-mn", "tiny", "-i", case_dir, "-o", out],
                        capsys)
    assert "missing t1 file" in _error_line(code, err)
    assert not os.path.exists(out)


@pytest.mark.parametrize("argv, message", [
    (["-mn", "tiny", "-r", "x", "-o", "y"], "give the checkpoint"),
    (["-m", "nowhere", "-mn", "tiny", "-o", "y"], "either a dataset root"),
    (["-m", "nowhere", "-mn", "tiny", "-r", "x", "-i", "z", "-o", "y"], "either a dataset root"),
    (["-m", "nowhere", "-mn", "tiny", "-i", "z", "--list", "a.txt", "-o", "y"], "--list needs"),
    (["-m", "nowhere", "-mn", "tiny", "-r", "x"], "output folder"),
    (["-m", "nowhere", "-mn", "tiny", "-r", "x", "-o", "y", "--tile-size", "26"], "--tile-size"),
    (["-m", "nowhere", "-mn", "tiny", "-r", "x", "-o", "y", "--slab", "0"], "--slab"),
    (["-m", "nowhere", "-mn", "tiny", "-r", "x", "-o", "y", "--shape-reuse", "-1"], "--shape-reuse"),
    (["-m", "nowhere", "-mn", "dense7", "-r", "x", "-o", "y"], "unknown model name"),
    (["-m", "nowhere", "-mn", "dense24_nocorrection", "-r", "x", "-o", "y", "-nc", "true"],
     "uncorrected"),
])
def test_bad_flags(argv, message, capsys):
    code, _, err = _run(argv, capsys)
    assert message in _error_line(code, err)


def test_missing_checkpoint(workspace, tmp_path, capsys):
    code, _, err = _run(["-m", str(tmp_path / "none"), "-mn", "tiny", "-r", workspace["root"],
                         "-o", str(tmp_path / "out")], capsys)
    assert "checkpoint not found" in _error_line(code, err)
    assert not os.path.exists(str(tmp_path / "out"))


def test_demo_without_a_trained_demo_model_says_how_to_get_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(str(tmp_path))
    code, _, err = _run(["--demo"], capsys)
    assert "run `python train_keras.py --demo` first" in _error_line(code, err)


def test_demo_defaults(tmp_path, monkeypatch):
    from densenet3d_keras.training.demo import demo_root

    monkeypatch.chdir(str(tmp_path))
    os.makedirs(os.path.join("runs", "dense24"))
    config = predict_keras.resolve(predict_keras.build_parser().parse_args(["--demo"]))
    assert config.checkpoint == os.path.join("runs", "dense24")
    assert config.model_name == "dense24" and config.method == "fcn"
    assert config.root_path == demo_root(None) and config.case_list == "test.txt"
    assert config.out == os.path.join("runs", "dense24", "demo_prediction")
    assert config.evaluate and config.overlays and config.padding == "valid"
    config = predict_keras.resolve(predict_keras.build_parser().parse_args(
        ["--demo", "-o", "elsewhere", "--method", "patch"]))
    assert config.out == "elsewhere" and config.padding == "same"
    # With a best checkpoint by validation (train_keras.py --demo validates), that one.
    open(os.path.join("runs", "dense24", "dense24_best.h5"), "w").close()
    config = predict_keras.resolve(predict_keras.build_parser().parse_args(["--demo"]))
    assert config.checkpoint == os.path.join("runs", "dense24", "dense24_best.h5")


def _copy_root(workspace, tmp_path):
    """A private copy of the two-case BraTS 2017 dataset (without its case lists)."""
    root = str(tmp_path / "root")
    for case_id in sorted(os.listdir(workspace["root"])):
        if os.path.isdir(os.path.join(workspace["root"], case_id)):
            shutil.copytree(os.path.join(workspace["root"], case_id), os.path.join(root, case_id))
    return root, sorted(os.listdir(root))


def test_a_bad_case_stops_the_run_before_anything_is_written(workspace, tmp_path, capsys):
    root, (first, last) = _copy_root(workspace, tmp_path)
    path = os.path.join(root, last, last + "_t2.nii.gz")
    image = nib.load(path)
    data = np.asarray(image.dataobj).astype(np.float32)
    data[10, 10, 10] = np.nan
    nib.save(nib.Nifti1Image(data, image.affine, image.header), path)
    out = str(tmp_path / "out")
    code, stdout, err = _run(["-m", workspace["checkpoint"], "-mn", "tiny", "-r", root, "-o", out],
                             capsys)
    assert _error_line(code, err) == "error: %s contains NaN or infinite values" % path
    assert not os.path.exists(out), "the good case %s was written before the bad one" % first
    assert "tiles" not in err and "planes" not in err  # no prediction started


def test_evaluate_checks_every_ground_truth_before_predicting(workspace, tmp_path, capsys):
    root, (first, last) = _copy_root(workspace, tmp_path)
    path = os.path.join(root, last, last + "_seg.nii.gz")
    image = nib.load(path)
    seg = np.asarray(image.dataobj).copy()
    seg[0, 0, 0] = 5  # not a BraTS label
    nib.save(nib.Nifti1Image(seg, image.affine, image.header), path)
    out = str(tmp_path / "out")
    existing = str(tmp_path / "existing")
    os.makedirs(existing)
    for target in (out, existing):
        code, _, err = _run(["-m", workspace["checkpoint"], "-mn", "tiny", "-r", root, "-o", target,
                             "--evaluate"], capsys)
        line = _error_line(code, err)
        assert line == "error: %s: label values [5] outside the brats2017 convention [0, 1, 2, 4]" % path
    assert not os.path.exists(out)
    assert os.listdir(existing) == []
    # Without --evaluate the label maps are not needed, and the run goes through.
    code, _, err = _run(["-m", workspace["checkpoint"], "-mn", "tiny", "-r", root, "-o", out], capsys)
    assert code == 0, err
    assert sorted(os.listdir(out)) == [first + ".nii.gz", last + ".nii.gz"]


def test_incomplete_case_folder_is_an_error_or_a_listed_skip(workspace, tmp_path, capsys):
    root, (first, last) = _copy_root(workspace, tmp_path)
    os.remove(os.path.join(root, first, first + "_flair.nii.gz"))
    out = str(tmp_path / "out")
    argv = ["-m", workspace["checkpoint"], "-mn", "tiny", "-r", root, "-o", out]
    code, _, err = _run(argv, capsys)
    assert _error_line(code, err).startswith(
        "error: case folder %s has no flair file (expected %s_flair.nii.gz or %s-t2f.nii.gz)"
        % (os.path.join(root, first), first, first))
    assert not os.path.exists(out)
    code, _, err = _run(argv + ["--skip-incomplete"], capsys)
    assert code == 0, err
    assert err.splitlines()[0] == ("skipped incomplete case folder: case folder %s has no flair file "
                                   "(expected %s_flair.nii.gz or %s-t2f.nii.gz)"
                                   % (os.path.join(root, first), first, first))
    assert os.listdir(out) == [last + ".nii.gz"]


@pytest.mark.parametrize("argv, line", [
    (["-nc", "maybe"], "error: argument -nc/--n4correction: expected true or false, got 'maybe' "
                       "(see --help)"),
    (["--method", "slow"], "error: argument --method: invalid choice: 'slow'"),
])
def test_usage_errors_are_one_line_and_exit_2(argv, line, capsys):
    with pytest.raises(SystemExit) as exit:
        predict_keras.main(["-m", "x", "-r", "y", "-o", "z"] + argv)
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(line) and err.endswith("(see --help)\n"), err


@pytest.mark.parametrize("text, message", [
    ("{broken", "are not valid JSON"),
    ('{"min_size": {"wt": 10}, "smooth": 1}', "unknown key(s) smooth"),
])
def test_bad_postprocessing_settings_stop_before_anything_is_predicted(tmp_path, capsys, text,
                                                                      message):
    settings = str(tmp_path / "settings.json")
    with open(settings, "w") as handle:
        handle.write(text)
    out = str(tmp_path / "out")
    code, stdout, err = _run(["-m", str(tmp_path / "checkpoints"), "-mn", "tiny", "-r",
                              str(tmp_path / "root"), "-o", out, "--postprocess", settings], capsys)
    line = _error_line(code, err)
    assert message in line and settings in line
    assert not os.path.exists(out) and "predict:" not in stdout


def test_bf16_prediction_stays_close_to_float32(workspace, tmp_path, capsys):
    labels, probabilities = {}, {}
    for precision in ("float32", "bf16"):
        out = str(tmp_path / precision)
        code, stdout, err = _run(["-m", workspace["checkpoint"], "-mn", "tiny", "-r", workspace["root"],
                                  "--list", "test.txt", "-o", out, "--save-probabilities",
                                  "--precision", precision], capsys)
        assert code == 0, err
        assert '"precision": "%s"' % precision in stdout
        case_id = _case_ids(workspace["root"], "test.txt")[0]
        labels[precision] = np.asarray(nib.load(os.path.join(out, case_id + ".nii.gz")).dataobj)
        probabilities[precision] = np.asarray(
            nib.load(os.path.join(out, case_id + "_probabilities.nii.gz")).dataobj)
    assert np.abs(probabilities["bf16"] - probabilities["float32"]).max() < 0.05  # 8-bit mantissa
    assert np.mean(labels["bf16"] == labels["float32"]) > 0.99
    from densenet3d_keras.core import compat

    assert compat.precision_policy() == "float32"  # the global policy is restored after loading


def test_bad_speed_flags(workspace, tmp_path, capsys):
    code, _, err = _run(["-m", workspace["checkpoint"], "-mn", "tiny", "-r", workspace["root"],
                         "-o", str(tmp_path / "out"), "--intra-op-threads", "-1"], capsys)
    assert _error_line(code, err) == "error: --intra-op-threads must be >= 0, got -1"
    assert not os.path.exists(str(tmp_path / "out"))
    # Graph mode is chosen per process (tests/training/test_graph_mode.py); the check is in resolve.
    args = predict_keras.build_parser().parse_args(["-m", workspace["checkpoint"], "-r", workspace["root"],
                                                    "-o", "out", "--precision", "bf16", "--graph-mode"])
    with pytest.raises(ValueError, match="--precision bf16 needs TensorFlow 2 eager"):
        predict_keras.resolve(args)


def test_every_flag_defaults_to_the_configurations_default():
    from densenet3d_keras.inference.config import DEFAULTS, FIELDS

    checked = set()
    for action in predict_keras.build_parser()._actions:
        if action.dest in FIELDS:
            assert action.default == getattr(DEFAULTS, action.dest), action.dest
            checked.add(action.dest)
    derived = {"architecture", "margin", "n4correction_from", "stream", "postprocess_settings"}
    assert set(FIELDS) - checked == derived


def test_without_mn_the_model_is_the_one_the_checkpoint_records(workspace, tmp_path, capsys):
    out = str(tmp_path / "out")
    code, stdout, err = _run(["-m", workspace["checkpoints"], "-r", workspace["root"], "--list", "test.txt",
                              "-o", out], capsys)
    assert code == 0, err
    assert '"model_name": "tiny"' in stdout and "model tiny (valid padding)" in stdout
    (case_id,) = _case_ids(workspace["root"], "test.txt")
    assert os.path.isfile(os.path.join(out, case_id + ".nii.gz"))
    # The recorded name decides the network; weights of another one are still refused.
    code, _, err = _run(["-m", workspace["liar"], "-r", workspace["root"], "-o", str(tmp_path / "liar")], capsys)
    assert "do not fit a dense24 model" in _error_line(code, err)


def test_a_new_prediction_removes_the_evaluation_of_the_one_it_replaces(workspace, tmp_path, capsys):
    out = tmp_path / "out"
    base = ["-m", workspace["checkpoints"], "-mn", "tiny", "-r", workspace["root"], "--list", "test.txt",
            "-o", str(out)]
    code, _, err = _run(base + ["--overlays"], capsys)
    assert code == 0, err
    (case_id,) = _case_ids(workspace["root"], "test.txt")
    earlier = ["metrics.csv", "summary.json", os.path.join("overlays", case_id + ".png")]
    assert all((out / name).is_file() for name in earlier)
    (out / "notes.txt").write_text("mine")
    (out / "overlays" / "other_case.png").write_bytes(b"not this run's")
    code, stdout, err = _run(base + ["--tiles", "--tile-size", "40"], capsys)  # another run, no --evaluate
    assert code == 0, err
    assert not any((out / name).exists() for name in earlier)
    assert "removed metrics.csv, summary.json, overlays/%s.png of an earlier evaluation" % case_id in stdout
    assert (out / "notes.txt").read_text() == "mine" and (out / "overlays" / "other_case.png").is_file()
    code, _, err = _run(base + ["--evaluate"], capsys)  # evaluated again: new metrics
    assert code == 0, err
    assert (out / "metrics.csv").is_file()
