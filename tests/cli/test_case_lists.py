"""A case list that names a case twice is refused by every command, with one message, before
anything is written (a case listed twice would be trained on twice per epoch, or count twice
in a mean score)."""
import os
import subprocess
import sys

import pytest

from tests import ROOT


@pytest.fixture
def twice(small_dataset, tmp_path):
    with open(os.path.join(small_dataset, "train.txt")) as handle:
        first, second = handle.read().split()[:2]
    path = tmp_path / "twice.txt"
    path.write_text("%s\n%s\n\n%s\n" % (first, second, first))
    return str(path), first


def _command(name, small_dataset, case_list, tmp_path):
    out = str(tmp_path / "out")
    return {
        "train": ["train_keras.py", "-mn", "tiny", "-r", small_dataset, "--train-list", case_list,
                  "-sp", out, "--cache-dir", str(tmp_path / "cache")],
        "validation": ["train_keras.py", "-mn", "tiny", "-r", small_dataset, "--val-list", case_list,
                       "-sp", out, "--cache-dir", str(tmp_path / "cache")],
        "predict": ["predict_keras.py", "-m", str(tmp_path / "no_run"), "-r", small_dataset,
                    "--list", case_list, "-o", out],
        "evaluate": ["evaluate_keras.py", "--pred", small_dataset, "--gt", small_dataset,
                     "--list", case_list, "-o", out],
        "n4": ["-m", "generators.n4", small_dataset, "--list", case_list],
    }[name]


@pytest.mark.parametrize("name", ["train", "validation", "predict", "evaluate", "n4"])
def test_a_case_named_twice_is_refused_everywhere(name, small_dataset, twice, tmp_path):
    case_list, first = twice
    before = sorted(os.listdir(small_dataset))
    done = subprocess.run([sys.executable] + _command(name, small_dataset, case_list, tmp_path),
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr == "error: case list %s names a case more than once: %s\n" % (case_list, first)
    assert not os.path.exists(str(tmp_path / "out")) and not os.path.exists(str(tmp_path / "cache"))
    assert sorted(os.listdir(small_dataset)) == before


@pytest.mark.parametrize("name, flags, what", [
    ("train", ["train_keras.py", "-mn", "tiny", "-r", "{root}", "-sp", "{root}/runs"], "save folder (-sp)"),
    ("train", ["train_keras.py", "-mn", "tiny", "-r", "{root}", "-sp", "{tmp}/run", "--log-dir",
               "{root}/logs"], "log folder (--log-dir)"),
    ("predict", ["predict_keras.py", "-m", "{tmp}/no_run", "-r", "{root}", "-o", "{root}/preds"],
     "output folder (-o)"),
    ("evaluate", ["evaluate_keras.py", "--pred", "{tmp}", "--gt", "{root}", "-o", "{root}/scores"],
     "output folder (-o)"),
])
def test_an_output_folder_inside_the_dataset_root_is_refused(name, flags, what, small_dataset, tmp_path):
    before = sorted(os.listdir(small_dataset))
    argv = [flag.format(root=small_dataset, tmp=tmp_path) for flag in flags]
    done = subprocess.run([sys.executable] + argv, cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    output = [a for a in argv if a.startswith(small_dataset + "/")][0]
    assert done.stderr == ("error: %s %s is inside the dataset root %s, where every folder is read "
                           "as a case; choose a folder outside it\n" % (what, output, small_dataset))
    assert sorted(os.listdir(small_dataset)) == before
