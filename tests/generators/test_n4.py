"""Tests of generators.n4: N4 bias-field correction with SimpleITK, files, cases and the CLI."""
import hashlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import nibabel as nib
import SimpleITK as sitk

from densenet3d_keras.cli import n4 as n4_cli
from generators import n4
from generators.brats import corrected_path, discover_cases

from tests import ROOT as REPO

# BraTS 2017 files: 1 mm voxels, x and y flipped, y offset by 239 mm.
BRATS_AFFINE = np.array([[-1.0, 0.0, 0.0, 0.0],
                         [0.0, -1.0, 0.0, 239.0],
                         [0.0, 0.0, 1.0, 0.0],
                         [0.0, 0.0, 0.0, 1.0]])
FAST = dict(iterations=(5, 5))  # for tests that are not about the correction quality


def phantom(shape=(64, 64, 48), seed=0):
    """A brain-like ellipsoid times a known smooth multiplicative field.

    Returns:
        (observed, clean, field, homogeneous, brain): float arrays and boolean masks; the
        homogeneous region is the "white matter" core without the "CSF" blob.
    """
    x, y, z = np.meshgrid(*[np.linspace(-1.0, 1.0, size) for size in shape], indexing="ij")
    radius = (x / 0.9) ** 2 + (y / 0.95) ** 2 + (z / 0.85) ** 2
    brain = radius < 1.0
    white = radius < 0.45
    blob = ((x - 0.3) ** 2 + (y + 0.2) ** 2 + z ** 2) < 0.03
    clean = np.where(brain, 70.0, 0.0)
    clean[white] = 100.0
    clean[blob] = 30.0
    clean *= 1.0 + 0.02 * np.random.RandomState(seed).randn(*shape)
    clean[~brain] = 0.0
    # exp of a low-order polynomial; about 0.7 .. 1.4 over the brain.
    field = np.exp(0.3 * x + 0.15 * y - 0.12 * z + 0.08 * x * y - 0.06 * z ** 2)
    homogeneous = white & ~(((x - 0.3) ** 2 + (y + 0.2) ** 2 + z ** 2) < 0.06)
    return clean * field, clean, field, homogeneous, brain


def coefficient_of_variation(volume, mask):
    values = volume[mask].astype(np.float64)
    return values.std() / values.mean()


def sha256(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def write_case(root, case_id, shape=(32, 32, 24), seed=0, corrupt=None):
    """Create ``<root>/<case>/<case>_{flair,t1,t1ce,t2,seg}.nii.gz``; ``corrupt`` gets random bytes."""
    folder = os.path.join(str(root), case_id)
    os.makedirs(folder)
    observed = phantom(shape, seed)[0]
    for offset, modality in enumerate(("flair", "t1", "t1ce", "t2")):
        path = os.path.join(folder, "%s_%s.nii.gz" % (case_id, modality))
        if modality == corrupt:
            with open(path, "wb") as handle:
                handle.write(np.random.RandomState(seed).bytes(4000))
            continue
        data = np.round(observed * (1.0 + 0.1 * offset)).astype(np.int16)
        nib.save(nib.Nifti1Image(data, BRATS_AFFINE), path)
    seg = (phantom(shape, seed)[1] > 90).astype(np.uint8)
    nib.save(nib.Nifti1Image(seg, BRATS_AFFINE), os.path.join(folder, "%s_seg.nii.gz" % case_id))
    return folder


def outputs_of(root):
    return sorted(name for _, _, names in os.walk(str(root)) for name in names if "_corrected" in name)


# ----------------------------------------------------------------------------------------------
# Pure helpers


@pytest.mark.parametrize("size, spacing, distance, expected", [
    ((240, 240, 155), (1.0, 1.0, 1.0), 300.0, (4, 4, 4)),    # BraTS with the reference 300 mm
    ((240, 240, 155), (1.0, 1.0, 1.0), 100.0, (6, 6, 5)),    # 239 mm -> 3 spans, 154 mm -> 2
    ((101, 51, 1), (2.0, 2.0, 5.0), 100.0, (5, 4, 4)),       # 200 mm is exactly 2 spans
    ((64, 64, 48), (1.0, 1.0, 1.0), 300.0, (4, 4, 4)),
])
def test_control_points_for_distance(size, spacing, distance, expected):
    assert n4.control_points_for_distance(size, spacing, distance) == expected


@pytest.mark.parametrize("text, expected", [
    ("50x50x30x20", (50, 50, 30, 20)), ("5", (5,)), (" 10X5 ", (10, 5)),
    ("50x", None), ("ax5", None), ("5x0", None), ("", None),
])
def test_parse_iterations(text, expected):
    if expected is None:
        with pytest.raises(ValueError, match="iterations"):
            n4.parse_iterations(text)
    else:
        assert n4.parse_iterations(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("flair,t2,t1,t1ce", ("flair", "t2", "t1", "t1ce")), ("t1ce, flair", ("t1ce", "flair")),
    ("flair,pd", None), ("flair,flair", None), ("", None),
])
def test_parse_modalities(text, expected):
    if expected is None:
        with pytest.raises(ValueError):
            n4.parse_modalities(text)
    else:
        assert n4.parse_modalities(text) == expected


@pytest.mark.parametrize("workers, cpus, expected", [(1, 8, 8), (4, 8, 2), (3, 8, 2), (8, 2, 1)])
def test_threads_per_worker(workers, cpus, expected):
    assert n4.threads_per_worker(workers, cpus) == expected


# ----------------------------------------------------------------------------------------------
# correct_volume


def test_correct_volume_removes_a_known_field_with_reference_defaults():
    observed, clean, field, homogeneous, brain = phantom()
    assert 0.65 < field[brain].min() < 0.8 and 1.3 < field[brain].max() < 1.5
    corrected, estimated = n4.correct_volume(observed, (1.0, 1.0, 1.0))

    assert corrected.dtype == np.float32 and estimated.dtype == np.float32
    assert corrected.shape == observed.shape == estimated.shape
    before = coefficient_of_variation(observed, homogeneous)
    after = coefficient_of_variation(corrected, homogeneous)
    assert after <= 0.5 * before, (before, after)
    # N4's field is defined up to a scale; Pearson correlation does not see the scale.
    assert np.corrcoef(estimated[brain], field[brain])[0, 1] > 0.9
    assert np.all(corrected[~brain] == 0)
    assert np.all(np.isfinite(corrected))


def test_correct_volume_array_and_sitk_image_agree_with_anisotropic_spacing():
    observed = phantom((48, 40, 32))[0].astype(np.float32)
    spacing = (1.0, 1.5, 2.0)
    params = dict(spline_distance_mm=30.0, shrink_factor=2, **FAST)
    from_array, field_array = n4.correct_volume(observed, spacing, **params)

    # SimpleITK's x axis is the last numpy axis: build the image so that x = array axis 0.
    image = sitk.GetImageFromArray(np.ascontiguousarray(observed.transpose(2, 1, 0)))
    image.SetSpacing(spacing)
    from_image, field_image = n4.correct_volume(image, None, **params)
    np.testing.assert_allclose(from_image.transpose(2, 1, 0), from_array, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(field_image.transpose(2, 1, 0), field_array, rtol=1e-4)


def test_correct_volume_uses_the_given_mask_only():
    observed, _, _, homogeneous, _ = phantom((40, 40, 32))
    corrected, _ = n4.correct_volume(observed, (1.0, 1.0, 1.0), mask=homogeneous, **FAST)
    assert corrected.shape == observed.shape
    with pytest.raises(ValueError, match="mask shape"):
        n4.correct_volume(observed, (1.0, 1.0, 1.0), mask=homogeneous[:-1])


@pytest.mark.parametrize("volume, kwargs, message", [
    (np.ones((8, 8, 8)), dict(shrink_factor=0), "shrink factor"),
    (np.ones((8, 8, 8)), dict(iterations=()), "iterations"),
    (np.ones((8, 8, 8)), dict(spline_distance_mm=0.0), "spline distance"),
    (np.zeros((8, 8, 8)), {}, "positive"),
    (np.ones((8, 8)), {}, "3-D"),
    (np.full((8, 8, 8), np.nan), {}, "NaN"),
])
def test_correct_volume_rejects_bad_input(volume, kwargs, message):
    with pytest.raises(ValueError, match=message):
        n4.correct_volume(volume, (1.0, 1.0, 1.0), **kwargs)


def test_correct_volume_needs_spacing_for_arrays():
    with pytest.raises(ValueError, match="spacing"):
        n4.correct_volume(np.ones((8, 8, 8)), None)


# ----------------------------------------------------------------------------------------------
# correct_file and correct_case


def test_correct_file_keeps_geometry_and_original(tmp_path):
    folder = write_case(tmp_path, "Brats17_A")
    source = os.path.join(folder, "Brats17_A_t1.nii.gz")
    target = corrected_path(source)
    digest = sha256(source)
    assert n4.correct_file(source, target, **FAST) == target

    assert sha256(source) == digest
    original, written = nib.load(source), nib.load(target)
    assert written.shape == original.shape
    np.testing.assert_array_equal(written.affine, original.affine)
    assert written.header.get_zooms() == original.header.get_zooms()
    assert written.header.get_data_dtype() == np.float32
    assert int(written.header["sform_code"]) == int(original.header["sform_code"])
    assert os.stat(target).st_mode == os.stat(source).st_mode  # umask-based, not a temp file's 0600
    expected, _ = n4.correct_volume(original.get_fdata(), (1.0, 1.0, 1.0), **FAST)
    np.testing.assert_allclose(np.asanyarray(written.dataobj), expected, rtol=1e-6)
    assert sorted(os.listdir(folder)) == sorted(
        ["Brats17_A_%s.nii.gz" % key for key in ("flair", "t1", "t1ce", "t2", "seg")]
        + ["Brats17_A_t1_corrected.nii.gz"])


@pytest.mark.parametrize("failure", [KeyboardInterrupt, OSError])
def test_correct_file_leaves_no_partial_output(tmp_path, monkeypatch, failure):
    folder = write_case(tmp_path, "Brats17_A")
    source = os.path.join(folder, "Brats17_A_t2.nii.gz")
    before = sorted(os.listdir(folder))

    def write_half_then_fail(array, reference, path):
        with open(path, "wb") as handle:
            handle.write(b"\x1f\x8b truncated")
        raise failure("disk full or Ctrl-C while writing")

    monkeypatch.setattr(n4, "_write_like", write_half_then_fail)
    with pytest.raises(failure):
        n4.correct_file(source, corrected_path(source), **FAST)
    assert sorted(os.listdir(folder)) == before


def test_a_stop_request_interrupts_n4_quietly_and_leaves_no_file(tmp_path, monkeypatch, capsys):
    folder = write_case(tmp_path, "Brats17_A")
    source = os.path.join(folder, "Brats17_A_flair.nii.gz")
    before = sorted(os.listdir(folder))
    polls = []

    def stop_at_the_fourth_poll():  # what a noted Ctrl-C / SIGTERM looks like to N4
        polls.append(1)
        return len(polls) >= 4

    monkeypatch.setattr(n4, "_stop_requested", stop_at_the_fourth_poll)
    monkeypatch.setattr(sys, "excepthook", n4._quiet_interrupts)  # as in the CLI's processes
    with pytest.raises(KeyboardInterrupt):
        n4.correct_file(source, corrected_path(source))  # 150 iterations unless stopped
    assert len(polls) <= 5  # stopped at the iteration that saw it, not after all 150
    assert sorted(os.listdir(folder)) == before
    assert "Traceback" not in capsys.readouterr()[1]


def test_correct_file_names_a_corrupt_file(tmp_path):
    folder = write_case(tmp_path, "Brats17_A", corrupt="flair")
    source = os.path.join(folder, "Brats17_A_flair.nii.gz")
    with pytest.raises(ValueError, match="Brats17_A_flair.nii.gz"):
        n4.correct_file(source, corrected_path(source), **FAST)
    assert not os.path.exists(corrected_path(source))


def test_correct_case_skips_existing_outputs_unless_overwrite(tmp_path):
    write_case(tmp_path, "Brats17_A")
    case = discover_cases(str(tmp_path))[0]
    digests = dict((modality, sha256(path)) for modality, path in case.images.items())

    assert set(n4.correct_case(case, **FAST).values()) == {n4.STATUS_CORRECTED}
    assert len(outputs_of(tmp_path)) == 4
    flair_output = corrected_path(case.images["flair"])
    sentinel = sha256(flair_output)
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4)), flair_output)
    stale = sha256(flair_output)
    assert stale != sentinel

    assert set(n4.correct_case(case, **FAST).values()) == {n4.STATUS_SKIPPED}
    assert sha256(flair_output) == stale
    statuses = n4.correct_case(case, overwrite=True, modalities=("flair",), **FAST)
    assert statuses == {"flair": n4.STATUS_CORRECTED}
    assert nib.load(flair_output).shape == (32, 32, 24)
    assert dict((modality, sha256(path)) for modality, path in case.images.items()) == digests


# ----------------------------------------------------------------------------------------------
# Command line


def run_cli(argv, capsys):
    """Run ``main`` in this process; returns (exit code, stdout, stderr)."""
    code = n4_cli.main([str(part) for part in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_end_to_end_with_two_workers(tmp_path, capsys):
    for index, case_id in enumerate(("Brats17_A", "Brats17_B", "Brats17_C")):
        write_case(tmp_path, case_id, seed=index)
    originals = dict((name, sha256(os.path.join(folder, name)))
                     for folder, _, names in os.walk(str(tmp_path)) for name in names)
    argv = [tmp_path, "--workers", "2", "--iterations", "5x5"]

    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert "2 worker(s)" in out and "iterations 5x5" in out
    for index in (1, 2, 3):
        assert "[%d/3] Brats17_" % index in out
    assert "3 case(s) corrected, 0 skipped, 0 failed (12 file(s) written" in out
    expected = sorted("%s_%s_corrected.nii.gz" % (case_id, modality)
                      for case_id in ("Brats17_A", "Brats17_B", "Brats17_C")
                      for modality in ("flair", "t1", "t1ce", "t2"))
    assert outputs_of(tmp_path) == expected  # no seg, no temporary file
    for case in discover_cases(str(tmp_path)):
        for path in case.images.values():
            written, original = nib.load(corrected_path(path)), nib.load(path)
            assert written.shape == original.shape
            np.testing.assert_array_equal(written.affine, original.affine)
    # The corrected files are readable through the project's own case model.
    assert all(os.path.isfile(p) for c in discover_cases(str(tmp_path)) for p in c.corrected().images.values())

    code, out, err = run_cli(argv, capsys)
    assert code == 0 and "0 case(s) corrected, 3 skipped, 0 failed" in out
    (tmp_path / "only_b.txt").write_text("Brats17_B\n")
    code, out, err = run_cli(argv + ["--overwrite", "--list", "only_b.txt", "--modalities", "t1"], capsys)
    assert code == 0, err
    assert "1 case(s) corrected, 0 skipped, 0 failed (1 file(s) written" in out
    unchanged = dict((name, sha256(os.path.join(folder, name)))
                     for folder, _, names in os.walk(str(tmp_path)) for name in names
                     if name in originals)
    assert unchanged == originals


def test_cli_reports_a_corrupt_file_and_carries_on(tmp_path, capsys):
    write_case(tmp_path, "Brats17_A", seed=0)
    write_case(tmp_path, "Brats17_Bad", seed=1, corrupt="flair")
    write_case(tmp_path, "Brats17_C", seed=2)
    code, out, err = run_cli([tmp_path, "--workers", "2", "--iterations", "3", "--modalities", "flair,t1"],
                             capsys)
    assert code == 1
    failure_lines = [line for line in err.splitlines() if "Brats17_Bad" in line]
    assert failure_lines and all("Brats17_Bad_flair.nii.gz" in line for line in failure_lines)
    assert "2 case(s) corrected, 0 skipped, 1 failed" in out
    assert outputs_of(tmp_path) == ["Brats17_A_flair_corrected.nii.gz", "Brats17_A_t1_corrected.nii.gz",
                                    "Brats17_C_flair_corrected.nii.gz", "Brats17_C_t1_corrected.nii.gz"]


def test_cli_names_the_cause_for_a_volume_too_thin_for_n4(tmp_path, capsys):
    folder = write_case(tmp_path, "Brats17_Thin")
    for name in os.listdir(folder):  # keep only the middle slice of every volume
        image = nib.load(os.path.join(folder, name))
        nib.save(nib.Nifti1Image(np.asarray(image.dataobj)[:, :, 12:13], image.affine),
                 os.path.join(folder, name))
    code, out, err = run_cli([tmp_path, "--workers", "1", "--iterations", "3", "--modalities", "flair"], capsys)
    assert code == 1
    lines = [line for line in err.splitlines() if "Brats17_Thin" in line]
    assert lines and "too thin for N4: its axis 2 has 1 voxel(s)" in lines[0], err
    assert "itkImageBase" not in err and outputs_of(tmp_path) == []


def test_correct_volume_refuses_axes_that_shrink_below_two_voxels():
    volume = np.random.RandomState(0).uniform(1, 2, (3, 30, 30))
    with pytest.raises(ValueError, match="its axis 0 has 3 voxel\\(s\\), 1 after shrinking by 2"):
        n4.correct_volume(volume, (1.0, 1.0, 1.0), shrink_factor=2, iterations=(3,))
    corrected, _ = n4.correct_volume(volume, (1.0, 1.0, 1.0), shrink_factor=1, iterations=(3,))
    assert corrected.shape == volume.shape


def test_a_rerun_removes_the_temporaries_of_a_killed_n4_and_only_those(tmp_path, capsys):
    folder = write_case(tmp_path, "Brats17_A")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = ".Brats17_A_flair_corrected.nii.gz.%d.0123abcd.tmp.nii.gz" % dead.pid
    kept = [".Brats17_A_flair_corrected.nii.gz.%d.89abcdef.tmp.nii.gz" % os.getpid(),  # alive
            ".notes.txt.%d.11111111.tmp" % dead.pid]  # not an N4 output
    for name in [stale] + kept:
        with open(os.path.join(folder, name), "wb") as handle:
            handle.write(b"partial")
    code, out, err = run_cli([tmp_path, "--workers", "1", "--iterations", "3", "--modalities", "flair"], capsys)
    assert code == 0, err
    assert "removed %s, left by process %d that is no longer running" % (os.path.join(folder, stale), dead.pid) in err
    assert sorted(name for name in os.listdir(folder) if name.startswith(".")) == sorted(kept)
    assert os.path.isfile(os.path.join(folder, "Brats17_A_flair_corrected.nii.gz"))


def test_cli_missing_root_exits_2_with_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "generators.n4", str(tmp_path / "nowhere")],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("error: dataset root not found:")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize("extra, message", [
    (["--iterations", "50xfifty"], "iterations"),
    (["--modalities", "flair,pd"], "unknown modality"),
    (["--workers", "0"], "--workers"),
    (["--shrink-factor", "0"], "shrink factor"),
    (["--list", "missing.txt"], "case list not found"),
    (["--bogus"], "unrecognized"),
])
def test_cli_bad_arguments_exit_2(tmp_path, capsys, extra, message):
    write_case(tmp_path, "Brats17_A")
    try:
        code = n4_cli.main([str(tmp_path)] + extra)
    except SystemExit as exit:  # argparse's own errors
        code = exit.code
    err = capsys.readouterr()[1]
    assert code == 2
    assert err.startswith("error:") and message in err and len(err.strip().splitlines()) == 1
    assert outputs_of(tmp_path) == []


def test_cli_incomplete_case_folder_is_an_error_or_a_listed_skip(tmp_path, capsys):
    write_case(tmp_path, "Brats17_A", seed=0)
    folder = write_case(tmp_path, "Brats17_B", seed=1)
    os.rename(os.path.join(folder, "Brats17_B_flair.nii.gz"), os.path.join(folder, "Brats17_B_Flair.nii.gz"))
    argv = [tmp_path, "--workers", "1", "--iterations", "3", "--modalities", "t1"]
    code, out, err = run_cli(argv, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("error: case folder %s has no flair file (expected Brats17_B_flair.nii.gz "
                          "or Brats17_B-t2f.nii.gz); found Brats17_B_Flair.nii.gz" % folder)
    assert outputs_of(tmp_path) == []
    code, out, err = run_cli(argv + ["--skip-incomplete"], capsys)
    assert code == 0, err
    assert err.startswith("skipped incomplete case folder: case folder %s has no flair file" % folder)
    assert "1 case(s) corrected" in out
    assert outputs_of(tmp_path) == ["Brats17_A_t1_corrected.nii.gz"]


# ----------------------------------------------------------------------------------------------
# Workers do not outlive the main process


def _proc_stat(pid):
    """Fields of /proc/<pid>/stat after the command name: state, ppid, ... (utime is [11])."""
    with open("/proc/%d/stat" % pid) as handle:
        text = handle.read()
    return text[text.rindex(")") + 2:].split()


def _children(pid):
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if int(_proc_stat(int(name))[1]) == pid:
                    found.append(int(name))
            except (OSError, IndexError, ValueError):
                pass
    return found


def _running(pid):
    try:
        return _proc_stat(pid)[0] not in ("Z", "X")
    except OSError:
        return False


def _cpu_seconds(pid):
    try:
        fields = _proc_stat(pid)
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))


def _wait_until(condition, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads processes from /proc")
def test_workers_exit_when_the_main_process_is_killed(tmp_path):
    for index, case_id in enumerate(("Brats17_A", "Brats17_B")):
        write_case(tmp_path, case_id, shape=(40, 40, 32), seed=index)
    # Enough iterations that N4 is still fitting when the main process is killed.
    process = subprocess.Popen(
        [sys.executable, "-m", "generators.n4", str(tmp_path), "--workers", "2", "--modalities",
         "flair", "--shrink-factor", "1", "--iterations", "2000x2000"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    descendants = []
    try:
        def workers_busy():
            workers = [pid for pid in _children(process.pid)
                       if b"spawn_main" in open("/proc/%d/cmdline" % pid, "rb").read()]
            return len(workers) == 2 and all(_cpu_seconds(pid) > 2.0 for pid in workers)

        assert _wait_until(workers_busy, 120), "the workers did not start"
        descendants = _children(process.pid)  # the workers and multiprocessing's tracker
        process.kill()
        process.wait()
        assert _wait_until(lambda: not any(_running(pid) for pid in descendants), 10), \
            "orphaned processes still running: %s" % [p for p in descendants if _running(p)]
        assert [name for _, _, names in os.walk(str(tmp_path)) for name in names
                if name.startswith(".")] == []  # N4 stopped, no temporary file left
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in descendants:  # never leave orphans behind, even when the test fails
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


def _worker_stand_in(parent=None):
    """A process set up like a pool worker, then idle the way a worker waits for a case."""
    script = ("import sys, time\n"
              "from generators import n4\n"
              "n4._init_worker(1, None%s)\n"
              "print('ready', flush=True)\n"
              "time.sleep(60)\n"
              "sys.exit(5)\n" % ("" if parent is None else ", %d" % parent))
    return subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True)


def test_a_worker_exits_on_sigterm():
    process = _worker_stand_in()
    try:
        assert process.stdout.readline() == "ready\n"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 128 + signal.SIGTERM
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_worker_exits_when_its_parent_is_gone_without_a_signal():
    # The portable fallback: the watchdog sees that the parent recorded at start-up is not the
    # parent any more (here: a stand-in given a wrong parent id, so no kernel signal is needed).
    process = _worker_stand_in(os.getpid() + 1000000)
    try:
        assert process.wait(timeout=10) == 128 + signal.SIGTERM
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
