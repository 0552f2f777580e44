"""densenet3d_keras.inference.inferers: which inferer a run gets, what each does, and a new backend."""
import os

import nibabel as nib
import numpy as np
import pytest

from densenet3d_keras.cli import predict as predict_keras
from densenet3d_keras.core.brain import brain_mask
from densenet3d_keras.inference.inferers.averaged import AveragedInferer
from densenet3d_keras.inference.inferers.base import PredictorInferer
from densenet3d_keras.inference.inferers.keras_model import Member
from densenet3d_keras.inference.inferers.patch import PatchInferer
from densenet3d_keras.inference.inferers.registry import METHODS, Method, build_inferer
from densenet3d_keras.inference.inferers.slabs import SlabInferer
from densenet3d_keras.inference.inferers.tiles import TileInferer
from densenet3d_keras.inference.predict import predict_fcn
from generators import synthetic
from generators.brats import load_case
from generators.volumes import load_case_volumes

SHAPE = (40, 36, 32)


def _config(flags):
    return predict_keras.resolve(predict_keras.build_parser().parse_args(
        ["-m", "a.h5", "-mn", "tiny", "-i", "case", "-o", "out"] + flags))


@pytest.mark.parametrize("flags, kind, unit, pass_name, text", [
    ([], SlabInferer, "planes", "box", "tiny fcn"),
    (["--tiles"], TileInferer, "tiles", "tile", "tiny fcn"),
    (["--method", "patch"], PatchInferer, "windows", "window", "tiny patch"),
])
def test_each_method_has_its_inferer(flags, kind, unit, pass_name, text):
    inferer = build_inferer(_config(flags))
    assert type(inferer) is kind and inferer.unit == unit and inferer.pass_name == pass_name
    assert inferer.describe() == text and inferer.checkpoint == "a.h5" and inferer.margin == 13
    assert inferer.member == Member(1, 1, False)


@pytest.mark.parametrize("flags, kind, count, flips, text", [
    (["--tta"], SlabInferer, 1, True, "tiny fcn tta"),
    (["--ensemble", "b.h5", "c.h5", "--method", "patch"], PatchInferer, 3, False, "tiny patch ensemble of 3"),
    (["--ensemble", "b.h5", "--tta", "--tiles"], TileInferer, 2, True, "tiny fcn tta ensemble of 2"),
])
def test_tta_and_ensembles_wrap_one_inferer_per_checkpoint(flags, kind, count, flips, text):
    inferer = build_inferer(_config(flags))
    assert isinstance(inferer, AveragedInferer) and inferer.flips is flips
    assert [type(member) for member in inferer.members] == [kind] * count
    assert [member.member for member in inferer.members] == [Member(i, count, False) for i in range(1, count + 1)]
    assert [member.checkpoint for member in inferer.members] == ["a.h5", "b.h5", "c.h5"][:count]
    assert inferer.describe() == text and inferer.unit == inferer.members[0].unit


def test_a_method_not_in_the_registry_is_refused():
    config = _config([])
    config.method = "onnx"
    with pytest.raises(ValueError, match="unknown method 'onnx'"):
        build_inferer(config)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    folder = synthetic.write_case(str(tmp_path_factory.mktemp("inferers")), "Brats17_INF_1", shape=SHAPE, seed=3)
    return load_case(folder)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from densenet3d_keras.core.compat import clear_session, keras
    from densenet3d_keras.models.builder import build_model
    from densenet3d_keras.models.checkpoints import save_checkpoint
    from tests.inference.test_inference import _randomise_batch_norm

    clear_session()
    keras.utils.set_random_seed(2)
    model = build_model("tiny", 38)
    _randomise_batch_norm(model, 2)
    path = str(tmp_path_factory.mktemp("ckpt") / "tiny_epoch_001.h5")
    save_checkpoint(model, path, 1, "tiny")
    clear_session()
    return path


def test_the_inferers_segment_a_case_alike_and_report_their_units(case, checkpoint):
    volumes = load_case_volumes(case, with_label=False)
    results, lines = {}, []
    for name, inferer in (("slabs", SlabInferer(checkpoint, "tiny", slab=4)),
                          ("tiles", TileInferer(checkpoint, "tiny", tile_size=36)),
                          ("tta", AveragedInferer([SlabInferer(checkpoint, "tiny", slab=4)], flips=True))):
        inferer.load(lines.append)
        calls = []
        results[name] = inferer.segment(volumes, lambda done, total: calls.append((done, total)))
        assert calls and calls[-1][0] == calls[-1][1], name
        results[name, "calls"] = calls
        results[name, "passes"] = inferer.describe_passes(results[name])
    assert lines[0] == "model tiny (valid padding) from %s (epoch 1)" % checkpoint
    assert lines[-1] == "averaging softmax probabilities over 1 model(s) x 8 mirror image(s): 8 forward passes per box"
    np.testing.assert_array_equal(results["slabs"].labels, results["tiles"].labels)
    planes = results["slabs", "calls"][-1][1]
    assert results["tta", "calls"][-1] == (8 * planes, 8 * planes)  # 8 passes, one count
    assert results["slabs", "passes"].startswith("box of ") and "streamed in slabs of 4 planes" in results["slabs", "passes"]
    assert results["tiles", "passes"].startswith("%d tiles of " % results["tiles"].num_passes)
    assert not np.array_equal(results["tta"].probabilities(), results["slabs"].probabilities())


class ThresholdInferer(PredictorInferer):
    """A backend that needs no network: label 2 (edema) where the flair is above ``level``."""

    unit = "tiles"
    pass_name = "tile"

    def __init__(self, level):
        self.level = level

    @classmethod
    def from_config(cls, config, checkpoint, member=None):
        return cls(float(os.path.basename(checkpoint)))

    def load(self, log=print):
        def predictor(batch):
            logits = np.zeros(batch.shape[:4] + (5,), np.float32)
            logits[..., 2] = batch[..., 0] - self.level
            return logits[:, 1:-1, 1:-1, 1:-1]  # margin 1

        self.predictor = predictor
        log("threshold %g" % self.level)

    def run(self, predictor, volumes, progress=None):
        return predict_fcn(predictor, volumes.image, volumes.background, margin=1, tile_size=20,
                           progress=progress)

    def describe(self):
        return "threshold %g" % self.level


def test_a_new_backend_is_one_registry_line_and_runs_through_the_command_line(case, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(METHODS, "threshold", Method(ThresholdInferer.from_config, "flair above a level", "valid"))
    out = str(tmp_path / "out")
    code = predict_keras.main(["-m", "0.5", "-mn", "tiny", "-i", case.directory, "-o", out, "--method", "threshold"])
    stdout = capsys.readouterr().out
    assert code == 0 and "threshold 0.5" in stdout
    labels = np.asarray(nib.load(os.path.join(out, case.case_id + ".nii.gz")).dataobj)
    volumes = load_case_volumes(case, with_label=False)
    expected = np.where(brain_mask(volumes.image, volumes.background) & (volumes.image[..., 0] > 0.5), 2, 0)
    assert labels.any() and np.array_equal(labels, expected)
    method = predict_keras.build_parser()._option_string_actions["--method"]
    assert "threshold" in method.choices and "threshold: flair above a level" in method.help
