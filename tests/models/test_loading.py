"""Loading a checkpoint while its training run prunes the folder (``--keep 1``)."""
import json
import os

import pytest

from densenet3d_keras.models import loading
from densenet3d_keras.models.checkpoints import save_checkpoint


@pytest.fixture
def run_folder(tmp_path, keras_session):
    from densenet3d_keras.models.builder import build_model
    from densenet3d_keras.models.objectives import compile_model

    model = compile_model(build_model("tiny"))
    save_checkpoint(model, str(tmp_path / "tiny_epoch_001.h5"), 1, "tiny", "valid")
    (tmp_path / "checkpoint.json").write_text('{"latest": "tiny_epoch_001.h5", "epoch": 1}')
    return tmp_path, model


def _pruning_build(monkeypatch, folder, model, times):
    """build_model that, like a training run with --keep 1, replaces the newest checkpoint."""
    build = loading.build_model
    state = {"epoch": 1}

    def pruning(*args, **kwargs):
        if state["epoch"] <= times:
            old = folder / ("tiny_epoch_%03d.h5" % state["epoch"])
            state["epoch"] += 1
            name = "tiny_epoch_%03d.h5" % state["epoch"]
            save_checkpoint(model, str(folder / name), state["epoch"], "tiny", "valid")
            (folder / "checkpoint.json").write_text(json.dumps({"latest": name, "epoch": state["epoch"]}))
            os.remove(str(old))
        return build(*args, **kwargs)

    monkeypatch.setattr(loading, "build_model", pruning)


def test_a_checkpoint_pruned_while_the_model_builds_gives_the_runs_new_newest(run_folder, monkeypatch):
    folder, model = run_folder
    _pruning_build(monkeypatch, folder, model, times=1)
    _, path, info = loading.load_model(str(folder), "tiny")
    assert path == str(folder / "tiny_epoch_002.h5") and info["epoch"] == 2


def test_a_folder_whose_checkpoints_keep_vanishing_says_so(run_folder, monkeypatch):
    folder, model = run_folder
    _pruning_build(monkeypatch, folder, model, times=5)
    with pytest.raises(FileNotFoundError, match="replaced twice while it was loaded "
                                                "\\(tiny_epoch_001.h5, then tiny_epoch_002.h5\\)"):
        loading.load_model(str(folder), "tiny")


def test_a_missing_checkpoint_file_is_not_retried(run_folder):
    folder, _ = run_folder
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        loading.load_model(str(folder / "tiny_epoch_009.h5"), "tiny")
