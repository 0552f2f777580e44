"""Tests for evaluate_keras.py (and densenet3d_keras.evaluation.report) on a tiny generated dataset."""
import csv
import json
import os

import nibabel as nib
import numpy as np
import pytest

from densenet3d_keras.cli import evaluate as evaluate_keras
from densenet3d_keras.cli.runner import EXIT_ERROR
from densenet3d_keras.evaluation.metrics import evaluate_case
from densenet3d_keras.evaluation.report import find_predictions
from tests.evaluation.strays import add_strays

SHAPE = (32, 32, 24)
SPACING = (1.0, 1.0, 2.0)
# BraTS-like: x and y flipped (LPS-style storage), origin at the far corner of y.
AFFINE = np.array([[-1.0, 0, 0, 0], [0, -1.0, 0, SHAPE[1] - 1.0], [0, 0, SPACING[2], 0],
                   [0, 0, 0, 1]])
HEADER = ("case,dice_wt,dice_tc,dice_et,hd95_wt,hd95_tc,hd95_et,sensitivity_wt,sensitivity_tc,"
          "sensitivity_et,specificity_wt,specificity_tc,specificity_et")
LESIONWISE_COLUMNS = ("lesion_dice_wt,lesion_dice_tc,lesion_dice_et,lesion_hd95_wt,lesion_hd95_tc,"
                      "lesion_hd95_et,lesion_tp_wt,lesion_tp_tc,lesion_tp_et,lesion_fp_wt,"
                      "lesion_fp_tc,lesion_fp_et,lesion_fn_wt,lesion_fn_tc,lesion_fn_et,"
                      "nsd_wt,nsd_tc,nsd_et")
#: Last column with lesion-wise metrics: the challenge settings each row was scored with.
CHALLENGE_COLUMN = "challenge"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

PERFECT = "Brats17_TEST_001"
SHIFTED = "Brats17_TEST_002"
NEW = "BraTS-GLI-00003-000"


def make_label(seed):
    """Internal labels: an edema blob around a necrotic core with an enhancing rim."""
    rng = np.random.RandomState(seed)
    x, y, z = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")
    cx, cy, cz = 14 + rng.randint(-2, 3), 15 + rng.randint(-2, 3), 11
    r = np.sqrt((x - cx) ** 2 + (y - cy) ** 2 + ((z - cz) * SPACING[2]) ** 2)
    label = np.zeros(SHAPE, np.uint8)
    label[r < 9] = 2
    label[r < 5] = 4
    label[r < 3] = 1
    return label


def make_flair(label, seed):
    rng = np.random.RandomState(seed)
    x, y, z = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")
    brain = ((x - 15.5) / 13) ** 2 + ((y - 15.5) / 14) ** 2 + ((z - 11.5) / 10) ** 2 < 1
    flair = np.where(brain, 100 + 10 * rng.randn(*SHAPE), 0)
    flair[label == 2] += 80
    flair[label == 4] += 40
    return flair.astype(np.float32)


def save(array, path, affine=AFFINE):
    image = nib.Nifti1Image(array, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, path)


def write_case(root, case_id, label, layout="brats2017", seed=0):
    """A case folder with four modalities and a label map in the layout's naming."""
    folder = os.path.join(root, case_id)
    os.makedirs(folder)
    if layout == "brats2017":
        names = {"flair": "_flair", "t1": "_t1", "t1ce": "_t1ce", "t2": "_t2", "seg": "_seg"}
        on_disk = label
    else:
        names = {"flair": "-t2f", "t1": "-t1n", "t1ce": "-t1c", "t2": "-t2w", "seg": "-seg"}
        on_disk = np.where(label == 4, 3, label).astype(np.uint8)
    flair = make_flair(label, seed)
    for modality in ("flair", "t1", "t1ce", "t2"):
        save(flair if modality == "flair" else flair * 0.5,
             os.path.join(folder, case_id + names[modality] + ".nii.gz"))
    save(on_disk, os.path.join(folder, case_id + names["seg"] + ".nii.gz"))
    return on_disk


@pytest.fixture
def dataset(tmp_path):
    """GT root with two 2017-layout cases and one 2023-layout case, plus predictions."""
    gt = str(tmp_path / "gt")
    pred = str(tmp_path / "pred")
    os.makedirs(gt)
    os.makedirs(pred)
    labels = {PERFECT: make_label(1), SHIFTED: make_label(2), NEW: make_label(3)}
    write_case(gt, PERFECT, labels[PERFECT], seed=1)
    write_case(gt, SHIFTED, labels[SHIFTED], seed=2)
    new_on_disk = write_case(gt, NEW, labels[NEW], layout="brats2023", seed=3)
    shifted = np.roll(labels[SHIFTED], 2, axis=0)
    shifted[shifted == 1] = 4  # also confuse part of the core
    save(labels[PERFECT], os.path.join(pred, PERFECT + ".nii.gz"))
    save(shifted, os.path.join(pred, SHIFTED + ".nii.gz"))
    save(new_on_disk, os.path.join(pred, NEW + ".nii.gz"))  # enhancing = 3, as the GT
    return {"gt": gt, "pred": pred, "out": str(tmp_path / "out"), "labels": labels,
            "shifted": shifted, "tmp": tmp_path}


def run(capsys, *argv):
    code = evaluate_keras.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def read_csv(path):
    with open(path) as stream:
        text = stream.read()
    rows = list(csv.DictReader(text.splitlines()))
    return text.splitlines()[0], rows


def assert_failed_cleanly(code, err, out_dir, *fragments):
    assert code == EXIT_ERROR
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]
    assert not os.path.exists(os.path.join(out_dir, "metrics.csv"))
    assert not os.path.exists(os.path.join(out_dir, "summary.json"))


def test_evaluates_all_cases_with_overlays(dataset, capsys):
    code, out, err = run(capsys, "--pred", dataset["pred"], "--gt", dataset["gt"],
                         "-o", dataset["out"], "--overlays")
    assert code == 0, err
    header, rows = read_csv(os.path.join(dataset["out"], "metrics.csv"))
    assert header == HEADER + "," + LESIONWISE_COLUMNS + ",challenge"  # --metrics all
    by_case = {row["case"]: row for row in rows}
    assert [row["case"] for row in rows] == sorted([PERFECT, SHIFTED, NEW])

    for case in (PERFECT, NEW):  # NEW: 2023 labels (ET = 3) on both sides, auto convention
        row = by_case[case]
        for region in ("wt", "tc", "et"):
            assert float(row["dice_" + region]) == 1.0
            assert float(row["hd95_" + region]) == 0.0
            assert float(row["sensitivity_" + region]) == 1.0

    row = by_case[SHIFTED]
    expected = evaluate_case(dataset["shifted"], dataset["labels"][SHIFTED], SPACING)
    assert 0 < float(row["dice_wt"]) < 1 and float(row["dice_et"]) < 1
    assert float(row["hd95_wt"]) > 0
    for name, value in expected.items():
        assert float(row[name]) == pytest.approx(value, abs=1e-5)
        assert 4 <= len(row[name].split(".")[1]) <= 6

    with open(os.path.join(dataset["out"], "summary.json")) as stream:
        summary = json.load(stream)
    assert summary["num_cases"] == 3
    assert summary["metrics"]["dice_wt"]["mean"] == pytest.approx(
        np.mean([float(r["dice_wt"]) for r in rows]), abs=1e-5)
    assert summary["metrics"]["dice_wt"]["median"] == 1.0
    assert set(summary["metrics"]["hd95_et"]) >= {"mean", "std", "median"}

    for case in (PERFECT, SHIFTED, NEW):
        with open(os.path.join(dataset["out"], "overlays", case + ".png"), "rb") as stream:
            assert stream.read(8) == PNG_SIGNATURE
    assert sorted(os.listdir(dataset["out"])) == ["metrics.csv", "overlays", "summary.json"]
    assert sorted(os.listdir(os.path.join(dataset["out"], "overlays"))) == sorted(
        [c + ".png" for c in (PERFECT, SHIFTED, NEW)])

    # The table: one line per case, then mean / std / median.
    assert "Dice WT" in out and "HD95 ET" in out
    for name in (PERFECT, SHIFTED, NEW, "mean", "std", "median"):
        assert any(line.startswith(name) for line in out.splitlines()), name


def test_overlay_png_is_readable(dataset):
    import matplotlib.image

    from densenet3d_keras.evaluation.overlays import write_overlay

    label = dataset["labels"][SHIFTED]
    path = str(dataset["tmp"] / "one.png")
    write_overlay(path, make_flair(label, 2), label, dataset["shifted"], SPACING, "title")
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4) and image.shape[0] > 100
    assert [n for n in os.listdir(str(dataset["tmp"])) if n.startswith(".overlay-")] == []


@pytest.mark.parametrize("axis", [0, 2])
def test_overlays_of_a_case_one_voxel_thick(tmp_path, capsys, axis):
    gt, pred = str(tmp_path / "gt"), str(tmp_path / "pred")
    os.makedirs(pred)
    write_case(gt, PERFECT, make_label(1), seed=1)
    folder = os.path.join(gt, PERFECT)
    for name in os.listdir(folder):  # keep one slice through the tumour of every volume
        volume = np.asarray(nib.load(os.path.join(folder, name)).dataobj)
        save(np.take(volume, [11 if axis == 2 else 14], axis=axis), os.path.join(folder, name))
    label = np.take(make_label(1), [11 if axis == 2 else 14], axis=axis)
    save(label, os.path.join(pred, PERFECT + ".nii.gz"))
    code, out, err = run(capsys, "--pred", pred, "--gt", gt, "-o", str(tmp_path / "out"), "--overlays")
    assert code == 0, err
    assert os.path.isfile(str(tmp_path / "out" / "metrics.csv"))
    with open(str(tmp_path / "out" / "overlays" / (PERFECT + ".png")), "rb") as stream:
        assert stream.read(8) == PNG_SIGNATURE


def test_list_selects_cases_and_missing_prediction_is_an_error(dataset, capsys):
    with open(os.path.join(dataset["gt"], "test.txt"), "w") as stream:
        stream.write("%s\n%s\n" % (PERFECT, NEW))
    code, out, err = run(capsys, "--pred", dataset["pred"], "--gt", dataset["gt"],
                         "-o", dataset["out"], "--list", "test.txt")
    assert code == 0, err
    _, rows = read_csv(os.path.join(dataset["out"], "metrics.csv"))
    assert [row["case"] for row in rows] == [PERFECT, NEW]

    os.remove(os.path.join(dataset["pred"], NEW + ".nii.gz"))
    out_dir = dataset["out"] + "2"
    code, _, err = run(capsys, "--pred", dataset["pred"], "--gt", dataset["gt"],
                       "-o", out_dir, "--list", "test.txt")
    assert_failed_cleanly(code, err, out_dir, NEW)
    assert not os.path.exists(out_dir)


def test_without_list_evaluates_the_intersection(dataset, capsys):
    os.remove(os.path.join(dataset["pred"], SHIFTED + ".nii.gz"))
    save(dataset["labels"][PERFECT], os.path.join(dataset["pred"], "Brats17_NO_GT.nii.gz"))
    code, out, err = run(capsys, "--pred", dataset["pred"], "--gt", dataset["gt"],
                         "-o", dataset["out"])
    assert code == 0, err
    _, rows = read_csv(os.path.join(dataset["out"], "metrics.csv"))
    assert sorted(row["case"] for row in rows) == sorted([PERFECT, NEW])
    assert ("skipped 1 prediction(s) without ground truth and 1 ground-truth case(s) without "
            "prediction") in out
    assert not os.path.exists(os.path.join(dataset["out"], "overlays"))


def test_explicit_label_convention(dataset, capsys):
    # 2023 predictions of the 2023 case read as 2017 labels: value 3 is not a 2017 label.
    code, _, err = run(capsys, "--pred", dataset["pred"], "--gt", dataset["gt"],
                       "-o", dataset["out"], "--label-convention", "brats2017")
    assert_failed_cleanly(code, err, dataset["out"], NEW, "[3]")
    # Written in 2017 labels, the 2023 case scores perfectly with --label-convention brats2017.
    save(dataset["labels"][NEW], os.path.join(dataset["pred"], NEW + ".nii.gz"))
    code, _, err = run(capsys, "--pred", dataset["pred"], "--gt", dataset["gt"],
                       "-o", dataset["out"], "--label-convention", "brats2017")
    assert code == 0, err
    _, rows = read_csv(os.path.join(dataset["out"], "metrics.csv"))
    assert float([r for r in rows if r["case"] == NEW][0]["dice_et"]) == 1.0


def test_missing_prediction_folder(dataset, capsys):
    missing = os.path.join(dataset["pred"], "nope")
    code, _, err = run(capsys, "--pred", missing, "--gt", dataset["gt"], "-o", dataset["out"])
    assert_failed_cleanly(code, err, dataset["out"], missing)
    assert not os.path.exists(dataset["out"])


def test_shape_mismatch(dataset, capsys):
    save(np.zeros((32, 32, 20), np.uint8), os.path.join(dataset["pred"], SHIFTED + ".nii.gz"))
    code, _, err = run(capsys, "--pred", dataset["pred"], "--gt", dataset["gt"],
                       "-o", dataset["out"], "--overlays")
    assert_failed_cleanly(code, err, dataset["out"], SHIFTED, "(32, 32, 20)", "(32, 32, 24)")
    assert not os.path.exists(dataset["out"])  # created by the run, removed on failure


def test_affine_mismatch(dataset, capsys):
    moved = AFFINE.copy()
    moved[0, 3] = 5.0
    save(dataset["labels"][PERFECT], os.path.join(dataset["pred"], PERFECT + ".nii.gz"), moved)
    code, _, err = run(capsys, "--pred", dataset["pred"], "--gt", dataset["gt"],
                       "-o", dataset["out"])
    assert_failed_cleanly(code, err, dataset["out"], PERFECT, "affine")


def test_corrupt_prediction_keeps_existing_output_untouched(dataset, capsys):
    os.makedirs(dataset["out"])
    with open(os.path.join(dataset["out"], "keep.txt"), "w") as stream:
        stream.write("x")
    with open(os.path.join(dataset["pred"], SHIFTED + ".nii.gz"), "wb") as stream:
        stream.write(b"\x1f\x8b this is not a NIfTI file")
    code, _, err = run(capsys, "--pred", dataset["pred"], "--gt", dataset["gt"],
                       "-o", dataset["out"], "--overlays")
    assert_failed_cleanly(code, err, dataset["out"], SHIFTED)
    assert os.listdir(dataset["out"]) == ["keep.txt"]  # no temporary or partial files


def test_unwritable_output(dataset, capsys):
    blocker = str(dataset["tmp"] / "a_file")
    with open(blocker, "w") as stream:
        stream.write("x")
    out_dir = os.path.join(blocker, "out")
    code, _, err = run(capsys, "--pred", dataset["pred"], "--gt", dataset["gt"], "-o", out_dir)
    assert_failed_cleanly(code, err, out_dir, out_dir)


def test_find_predictions_ignores_other_files(dataset):
    with open(os.path.join(dataset["pred"], "notes.txt"), "w") as stream:
        stream.write("x")
    assert list(find_predictions(dataset["pred"])) == sorted([PERFECT, SHIFTED, NEW])


def test_evaluate_folder_library_call(dataset):
    from densenet3d_keras.evaluation.report import evaluate_folder, select_cases
    from generators.brats import load_case

    cases, extra, unpredicted = select_cases(dataset["pred"], dataset["gt"])
    assert (extra, unpredicted) == ([], [])
    seen = []
    rows, summary = evaluate_folder(dataset["pred"], cases, dataset["out"],
                                    progress=lambda i, n, row: seen.append((i, n, row["case"])))
    assert seen == [(i + 1, 3, row["case"]) for i, row in enumerate(rows)]
    assert summary["num_cases"] == 3 and list(summary["metrics"])[0] == "dice_wt"

    # A case without a label map is refused before anything is scored or written.
    unlabelled = load_case(os.path.join(dataset["gt"], PERFECT))
    unlabelled.label = None
    out_dir = dataset["out"] + "_unlabelled"
    with pytest.raises(FileNotFoundError, match=PERFECT):
        evaluate_folder(dataset["pred"], [unlabelled], out_dir)
    assert not os.path.exists(out_dir)


def _interrupt_on(monkeypatch, module, name, when):
    original = getattr(module, name)
    calls = []

    def patched(*args, **kwargs):
        calls.append(args)
        if when(len(calls), args):
            raise KeyboardInterrupt()
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, patched)
    return calls


def run_interrupted(capsys, *argv):
    try:
        return run(capsys, *argv)
    except KeyboardInterrupt:  # would end the whole pytest session
        pytest.fail("KeyboardInterrupt escaped evaluate_keras.main")


def test_ctrl_c_while_scoring_prints_interrupted_and_leaves_nothing(dataset, capsys, monkeypatch):
    from densenet3d_keras.evaluation import report as evaluation

    calls = _interrupt_on(monkeypatch, evaluation, "evaluate_case", lambda n, args: n == 2)
    code, _, err = run_interrupted(capsys, "--pred", dataset["pred"], "--gt", dataset["gt"], "-o",
                       dataset["out"], "--overlays")
    assert (code, err) == (130, "interrupted\n")
    assert len(calls) == 2
    assert not os.path.exists(dataset["out"])  # created by the run: removed again
    # An existing output folder keeps what it held.
    del calls[:]
    os.makedirs(dataset["out"])
    with open(os.path.join(dataset["out"], "metrics.csv"), "w") as stream:
        stream.write("earlier run\n")
    code, _, err = run_interrupted(capsys, "--pred", dataset["pred"], "--gt", dataset["gt"], "-o",
                       dataset["out"], "--overlays")
    assert (code, err) == (130, "interrupted\n")
    assert os.listdir(dataset["out"]) == ["metrics.csv"]
    with open(os.path.join(dataset["out"], "metrics.csv")) as stream:
        assert stream.read() == "earlier run\n"


def test_ctrl_c_while_renaming_outputs_leaves_no_half_set(dataset, capsys, monkeypatch):
    from densenet3d_keras.evaluation import report as evaluation

    _interrupt_on(monkeypatch, evaluation.os, "replace",
                  lambda n, args: str(args[1]).endswith("summary.json"))
    code, _, err = run_interrupted(capsys, "--pred", dataset["pred"], "--gt", dataset["gt"], "-o",
                       dataset["out"], "--overlays")
    assert (code, err) == (130, "interrupted\n")
    assert not os.path.exists(dataset["out"])  # no metrics.csv without summary.json, no overlays


def test_incomplete_ground_truth_folder_is_an_error_or_a_listed_skip(dataset, capsys):
    os.makedirs(os.path.join(dataset["gt"], "Brats17_EMPTY"))
    code, _, err = run(capsys, "--pred", dataset["pred"], "--gt", dataset["gt"], "-o", dataset["out"])
    assert_failed_cleanly(code, err, dataset["out"], "case folder %s has no flair file"
                          % os.path.join(dataset["gt"], "Brats17_EMPTY"))
    code, out, err = run(capsys, "--pred", dataset["pred"], "--gt", dataset["gt"], "-o",
                         dataset["out"], "--skip-incomplete")
    assert code == 0, err
    assert err.startswith("skipped incomplete case folder: case folder %s has no flair file"
                          % os.path.join(dataset["gt"], "Brats17_EMPTY"))
    _, rows = read_csv(os.path.join(dataset["out"], "metrics.csv"))
    assert len(rows) == 3


@pytest.mark.parametrize("flag, value", [("--label-convention", "brats2099"),
                                         ("--brats2024-legacy-metrics", "exact")])
def test_usage_error_is_one_line(dataset, capsys, flag, value):
    with pytest.raises(SystemExit) as exit:
        evaluate_keras.main(["--pred", dataset["pred"], "--gt", dataset["gt"], "-o", dataset["out"],
                             flag, value])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("error: argument %s: invalid choice: '%s'" % (flag, value))
    assert err.endswith("(see --help)\n")
    assert not os.path.exists(dataset["out"])


# ------------------------------------------------ --metrics and --choose-postprocessing

@pytest.mark.parametrize("metric_set", ["lesionwise", "legacy"])
def test_metric_sets_choose_the_columns(dataset, capsys, metric_set):
    code, out, err = run(capsys, "--pred", dataset["pred"], "--gt", dataset["gt"],
                         "-o", dataset["out"], "--metrics", metric_set)
    assert code == 0, err
    header, rows = read_csv(os.path.join(dataset["out"], "metrics.csv"))
    with open(os.path.join(dataset["out"], "summary.json")) as stream:
        summary = json.load(stream)
    assert summary["metric_set"] == metric_set
    from densenet3d_keras.evaluation.report import METRIC_SETS

    assert evaluate_keras.METRIC_SETS == METRIC_SETS  # the flag's choices are the report's
    lesion_columns = LESIONWISE_COLUMNS.split(",")
    by_case = {row["case"]: row for row in rows}
    if metric_set == "legacy":
        assert header == HEADER
        assert not set(lesion_columns) & set(summary["metrics"])
        assert "LDice" not in out
        return
    assert header == "case," + LESIONWISE_COLUMNS + ",challenge"
    assert list(summary["metrics"]) == lesion_columns
    assert set(row[CHALLENGE_COLUMN] for row in rows) == {"GLI-2023"}
    assert summary["challenge"] == "GLI"
    assert summary["lesion_settings"] == {"GLI-2023": {
        "dilation_iterations": 3, "min_lesion_volume_mm3": {"wt": 50.0, "tc": 50.0, "et": 50.0}}}
    assert "dice_wt" not in by_case[PERFECT]
    # A perfect prediction of one tumour: each region is one lesion, found exactly.
    for region in ("wt", "tc", "et"):
        assert float(by_case[PERFECT]["lesion_dice_" + region]) == 1.0
        assert float(by_case[PERFECT]["nsd_" + region]) == 1.0
        assert (by_case[PERFECT]["lesion_tp_" + region], by_case[PERFECT]["lesion_fp_" + region],
                by_case[PERFECT]["lesion_fn_" + region]) == ("1", "0", "0")  # integers
    # The shifted case: the values of the library functions, from the file.
    from densenet3d_keras.evaluation.lesionwise import evaluate_lesionwise
    from densenet3d_keras.evaluation.metrics import nsd_case

    expected = evaluate_lesionwise(dataset["shifted"], dataset["labels"][SHIFTED], SPACING)
    expected.update(nsd_case(dataset["shifted"], dataset["labels"][SHIFTED], SPACING))
    for name, value in expected.items():
        assert float(by_case[SHIFTED][name]) == pytest.approx(value, abs=1e-5), name
    assert summary["metrics"]["lesion_dice_wt"]["mean"] == pytest.approx(
        np.mean([float(row["lesion_dice_wt"]) for row in rows]), abs=1e-5)
    assert "LDice WT" in out and "LHD95 ET" in out and " Dice WT" not in out


def with_strays(label):
    """``label`` with 2^3 edema blobs at corners far from the tumour (at least two)."""
    out, placed = add_strays(label, [(0, 0, 0), (30, 30, 0), (0, 30, 22), (30, 0, 22),
                                     (30, 30, 22), (0, 0, 22)])
    assert placed >= 2
    return out


def test_choose_postprocessing_removes_stray_components(dataset, capsys):
    from densenet3d_keras.evaluation.lesionwise import evaluate_lesionwise
    from densenet3d_keras.inference.postprocess import apply_postprocessing, load_settings

    pred = str(dataset["tmp"] / "pred_strays")
    os.makedirs(pred)
    strays = {PERFECT: with_strays(dataset["labels"][PERFECT]),
              SHIFTED: with_strays(dataset["shifted"])}
    for case_id, label in strays.items():
        save(label, os.path.join(pred, case_id + ".nii.gz"))
    code, out, err = run(capsys, "--pred", pred, "--gt", dataset["gt"], "-o", dataset["out"],
                         "--choose-postprocessing")
    assert code == 0, err
    path = os.path.join(dataset["out"], "postprocessing.json")
    assert sorted(os.listdir(dataset["out"])) == ["metrics.csv", "postprocessing.json",
                                                  "summary.json"]
    settings = load_settings(path)
    # Blobs of 8 voxels: the smallest WT size of the grid above 8 removes them all.
    assert settings.min_size["wt"] == 50
    assert "chosen: min_size wt=50" in out
    with open(path) as stream:
        validation = json.load(stream)["validation"]
    assert validation["num_cases"] == 2 and sorted(validation["cases"]) == sorted(strays)
    before, after = validation["before"], validation["after"]
    assert after["lesion_dice_mean"] > before["lesion_dice_mean"]
    assert after["lesion_dice_wt"] == pytest.approx(np.mean(
        [evaluate_lesionwise(apply_postprocessing(label, settings), dataset["labels"][case_id],
                             SPACING)["lesion_dice_wt"] for case_id, label in strays.items()]))
    line = [l for l in out.splitlines() if l.startswith("lesion-wise mean Dice")][0]
    assert "before %.4f" % before["lesion_dice_mean"] in line
    assert "after %.4f" % after["lesion_dice_mean"] in line
    assert any(l.startswith("legacy mean Dice") for l in out.splitlines())
    # Applied to the predictions, the settings give back the perfect case exactly.
    assert np.array_equal(apply_postprocessing(strays[PERFECT], settings),
                          dataset["labels"][PERFECT])


# ------------------------------------------------------ conventions from values, BraTS 2024, challenges

def test_2023_labels_under_2017_names_are_read_by_their_values(dataset, capsys):
    # A 2023 map renamed to the 2017 file names: read as brats2023, said in one line.
    on_disk = np.where(dataset["labels"][PERFECT] == 4, 3, dataset["labels"][PERFECT])
    save(on_disk.astype(np.uint8), os.path.join(dataset["gt"], PERFECT, PERFECT + "_seg.nii.gz"))
    save(on_disk.astype(np.uint8), os.path.join(dataset["pred"], PERFECT + ".nii.gz"))
    code, _, err = run(capsys, "--pred", dataset["pred"], "--gt", dataset["gt"],
                       "-o", dataset["out"], "--metrics", "legacy")
    assert code == 0, err
    notes = [line for line in err.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and PERFECT in notes[0]
    assert "do not fit the brats2017 convention; read as brats2023" in notes[0]
    _, rows = read_csv(os.path.join(dataset["out"], "metrics.csv"))
    row = [r for r in rows if r["case"] == PERFECT][0]
    assert [float(row["dice_" + r]) for r in ("wt", "tc", "et")] == [1.0, 1.0, 1.0]


def with_cavity(dataset):
    """Give the 2023-layout case a resection cavity (label 4) beside its tumour."""
    on_disk = np.where(dataset["labels"][NEW] == 4, 3, dataset["labels"][NEW]).astype(np.uint8)
    on_disk[2:6, 2:6, 2:5] = 4
    save(on_disk, os.path.join(dataset["gt"], NEW, NEW + "-seg.nii.gz"))
    return on_disk


def test_brats2024_labels_scored_on_six_regions(dataset, capsys):
    on_disk = with_cavity(dataset)
    save(np.where(on_disk == 4, 0, on_disk).astype(np.uint8),  # the network finds no cavity
         os.path.join(dataset["pred"], NEW + ".nii.gz"))
    code, _, err = run(capsys, "--pred", dataset["pred"], "--gt", dataset["gt"], "-o", dataset["out"])
    assert code == 0, err
    assert "read as brats2024" in err
    header, rows = read_csv(os.path.join(dataset["out"], "metrics.csv"))
    for region in ("netc", "snfh", "rc"):
        assert ("dice_" + region) in header.split(",") and ("lesion_fn_" + region) in header
    by_case = {row["case"]: row for row in rows}
    new = by_case[NEW]
    assert new["challenge"] == "GLI-2024" and by_case[PERFECT]["challenge"] == "GLI-2023"
    assert float(new["dice_wt"]) == 1.0 and float(new["dice_et"]) == 1.0  # WT without cavity
    assert float(new["dice_rc"]) == 0.0 and float(new["hd95_rc"]) == 337.0  # 2024 penalty
    assert (new["lesion_tp_rc"], new["lesion_fn_rc"]) == ("0", "1")      # 48 mm^3 > 20
    assert by_case[PERFECT]["dice_rc"] == "nan"                          # not a 2024 case
    with open(os.path.join(dataset["out"], "summary.json")) as stream:
        summary = json.load(stream)
    assert summary["regions"] == ["wt", "tc", "netc", "snfh", "et", "rc"]
    settings = summary["lesion_settings"]["GLI-2024"]
    assert settings["min_lesion_volume_mm3"]["et"] == 10.0
    assert settings["min_lesion_volume_mm3"]["rc"] == 20.0
    assert settings["dilation_iterations"]["netc"] == 5 and settings["missed_hd95_mm"] == 337.0
    assert summary["metrics"]["dice_rc"]["count"] == 1


def test_brats2024_with_another_challenge_is_refused(dataset, capsys):
    with_cavity(dataset)
    code, _, err = run(capsys, "--pred", dataset["pred"], "--gt", dataset["gt"],
                       "-o", dataset["out"], "--challenge", "MEN")
    note, error = err.strip().splitlines()  # the note that the case is read as brats2024
    assert "read as brats2024" in note
    assert code == EXIT_ERROR and error.startswith("error: case %s" % NEW)
    assert "scored with the GLI settings, not --challenge MEN" in error
    assert not os.path.exists(dataset["out"])


@pytest.mark.parametrize("challenge, dilation, volume", [("MET", 1, 2.0), ("MEN", 1, 50.0),
                                                         ("PED", 3, 50.0)])
def test_challenge_settings_in_summary_and_csv(dataset, capsys, challenge, dilation, volume):
    code, out, err = run(capsys, "--pred", dataset["pred"], "--gt", dataset["gt"],
                         "-o", dataset["out"], "--metrics", "lesionwise", "--challenge", challenge)
    assert code == 0, err
    assert "challenge=%s" % challenge in out
    _, rows = read_csv(os.path.join(dataset["out"], "metrics.csv"))
    assert set(row["challenge"] for row in rows) == {challenge + "-2023"}
    with open(os.path.join(dataset["out"], "summary.json")) as stream:
        summary = json.load(stream)
    assert summary["challenge"] == challenge
    assert summary["lesion_settings"] == {challenge + "-2023": {
        "dilation_iterations": dilation,
        "min_lesion_volume_mm3": {"wt": volume, "tc": volume, "et": volume}}}


# ------------------------------------------------------------------ --brats2024-legacy-metrics

def with_two_cavities(dataset):
    """Give the 2023-layout case two resection cavities (RC lesions 1 and 2, 48 voxels each, far
    apart and from the tumour), predicted exactly."""
    on_disk = with_cavity(dataset)
    on_disk[26:30, 26:30, 18:21] = 4
    save(on_disk, os.path.join(dataset["gt"], NEW, NEW + "-seg.nii.gz"))
    save(on_disk, os.path.join(dataset["pred"], NEW + ".nii.gz"))
    return on_disk


def test_brats2024_legacy_metrics_official_or_masks(dataset, capsys):
    from densenet3d_keras.evaluation.metrics import LEGACY_2024_CHOICES

    assert evaluate_keras.LEGACY_2024_CHOICES == LEGACY_2024_CHOICES  # the flag's choices
    on_disk = with_two_cavities(dataset)
    voxels = on_disk.size
    results = {}
    for choice in ("masks", "official"):
        out_dir = dataset["out"] + "-" + choice
        code, out, err = run(capsys, "--pred", dataset["pred"], "--gt", dataset["gt"], "-o", out_dir,
                             *(("--brats2024-legacy-metrics", choice) if choice == "official" else ()))
        assert code == 0, err
        assert "brats2024_legacy_metrics=%s" % choice in out
        header, rows = read_csv(os.path.join(out_dir, "metrics.csv"))
        with open(os.path.join(out_dir, "summary.json")) as stream:
            summary = json.load(stream)
        assert summary["brats2024_legacy_metrics"] == choice  # the default is masks
        results[choice] = (header, {row["case"]: row for row in rows})
    (header, masks), (official_header, official) = results["masks"], results["official"]
    assert header == official_header
    # A perfect prediction of two cavities: the masks say so; the official label maps count only
    # cavity 1 (48 voxels) as true positives, against sums of ids 48 + 2 * 48.
    assert float(masks[NEW]["sensitivity_rc"]) == 1.0 and float(masks[NEW]["specificity_rc"]) == 1.0
    assert float(official[NEW]["sensitivity_rc"]) == pytest.approx(1.0 / 3, abs=1e-6)
    tn = voxels - 48
    assert float(official[NEW]["specificity_rc"]) == pytest.approx(tn / (tn + 96.0), abs=1e-6)
    # HD95 of a perfect prediction is 0 both ways (identical maps); Dice and lesion-wise values,
    # the single-lesion regions and the 2023 cases do not change.
    changed = set(name for name in official[NEW] if official[NEW][name] != masks[NEW][name])
    assert changed == {"sensitivity_rc", "specificity_rc"}
    for case_id in (PERFECT, SHIFTED):
        assert official[case_id] == masks[case_id]


def test_an_unknown_brats2024_legacy_metrics_value_is_refused_by_the_api(dataset):
    from densenet3d_keras.evaluation.report import evaluate_folder

    with pytest.raises(ValueError, match="unknown BraTS 2024 legacy metrics 'exact'"):
        evaluate_folder(dataset["pred"], [], dataset["out"], legacy_2024="exact")
