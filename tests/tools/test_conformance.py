"""The conformance checks of ``make lint`` (tools/check_tf115.py, tools/check_npu_bridge.py) catch
what they are for: calls planted into a copy of this project are reported, with file and line;
the same calls behind a TensorFlow 2-only guard are not; the project itself passes.

The TensorFlow 1.15.5 wheel is the real one (``make lint`` has fetched it into the user cache
before the tests run); the walk's mechanics are also shown on a small library written here.
"""
import os
import shutil

import pytest

from tools import check_npu_bridge, check_tf115
from tools.conformance import recorded
from tools.conformance.library import Library
from tools.conformance.newer import newer_names
from tools.conformance.project import Walk
from tools.conformance.sources import FolderTree
from tools.conformance.wheels import cache_root

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.path.join(cache_root(), "tf1155")
LABEL = "(not in TF 1.15.5)"


@pytest.fixture(scope="module")
def tf115():
    return check_tf115.tensorflow_library(CACHE)


def copy_project(target):
    for name in check_tf115.PACKAGES:
        shutil.copytree(os.path.join(ROOT, name), os.path.join(target, name),
                        ignore=shutil.ignore_patterns("__pycache__"))
    for name in check_tf115.SCRIPTS:
        shutil.copy(os.path.join(ROOT, name + ".py"), target)
    return target


def plant(root, path, old, new):
    """Replace ``old`` (found once) by ``new`` in ``root/path``; the line number of ``new``."""
    full = os.path.join(root, path)
    with open(full) as handle:
        text = handle.read()
    assert text.count(old) == 1, old
    with open(full, "w") as handle:
        handle.write(text.replace(old, new))
    return text[:text.index(old)].count("\n") + 1


def _lines(findings):
    return ["%s:%d %s" % finding for finding in findings]


def test_the_project_passes(tf115):
    assert check_tf115.check(ROOT, tf115, newer=newer_names(CACHE)) == []


def test_planted_tensorflow_2_calls_are_reported(tf115, tmp_path):
    root = copy_project(str(tmp_path))
    objectives, layers = "densenet3d_keras/models/objectives.py", "densenet3d_keras/nn/layers.py"
    anchor = "    optimizer = compat.loss_scale_optimizer(optimizer, compat.precision_policy(model))\n"
    plant(root, objectives, anchor, anchor + '    tf.config.list_physical_devices("GPU")\n'
          + '    if not compat.IS_TF1:\n        tf.config.list_physical_devices("CPU")\n')
    keyword = plant(root, layers, 'kernel_initializer="he_normal", name="unit%d_conv"',
                    'kernel_initializer="he_normal", groups=1, name="unit%d_conv"')
    private = plant(root, "densenet3d_keras/core/compat.py", "        create_optimizer_weights(fresh, var_list)",
                    "        fresh._create_all_weights(var_list)")
    field = plant(root, "densenet3d_keras/runtime/npu.py", "rewrite_options.remapping = ",
                  "rewrite_options.remaping = ")
    conv = max(n for n in lines_of(root, layers, "keras.layers.Conv3D(") if n <= keyword)
    assert sorted(_lines(check_tf115.check(root, tf115, newer=newer_names(CACHE)))) == sorted([
        "densenet3d_keras/core/compat.py:%d fresh._create_all_weights %s" % (private, LABEL),
        "densenet3d_keras/models/objectives.py:%d tf.config.list_physical_devices %s"
        % (lines_of(root, objectives, '"GPU"')[0], LABEL),
        "densenet3d_keras/nn/layers.py:%d keras.layers.Conv3D(groups=) %s" % (conv, LABEL),
        "densenet3d_keras/runtime/npu.py:%d tf.compat.v1.ConfigProto.graph_options.rewrite_options.remaping %s"
        % (field, LABEL),
    ])


def lines_of(root, path, text):
    """Numbers of the lines of ``root/path`` that contain ``text``."""
    with open(os.path.join(root, path)) as handle:
        lines = handle.read().splitlines()
    return [number for number, line in enumerate(lines, 1) if text in line]


def test_planted_npu_bridge_mistakes_are_reported(tmp_path):
    root = copy_project(str(tmp_path))
    npu = "densenet3d_keras/runtime/npu.py"
    plant(root, npu, '"decr_every_n_nan_or_inf": 2', '"decr_every_n": 2')
    wrapper = plant(root, npu, "npu_init.npu_distributed_optimizer_wrapper(optimizer)",
                    "npu_init.npu_distributed_optimizer_wrapper(optimizer, average=True)")
    key = plant(root, npu, 'parameter_map["use_off_line"].b', 'parameter_map["use_offline"].b')
    field = plant(root, npu, 'parameter_map["precision_mode"].s', 'parameter_map["precision_mode"].b')
    name = plant(root, npu, 'custom_op.name = "NpuOptimizer"', 'custom_op.name = "NPUOptimizer"')
    mode = plant(root, npu, '"force_fp32",', '"force_fp32", "fp8",')
    manager, = lines_of(root, npu, "ExponentialUpdateLossScaleManager(**DYNAMIC_LOSS_SCALE)")
    api = recorded.load()
    where = "npu_bridge of hicann/tensorflow@4f8aa5a7"
    findings = set(check_npu_bridge.walk_findings(root, api)) | set(check_npu_bridge.config_findings(root, api))
    assert sorted(_lines(findings)) == sorted([
        "%s:%d npu_bridge.npu_init.ExponentialUpdateLossScaleManager(decr_every_n=) (not in %s)" % (npu, manager, where),
        "%s:%d npu_bridge.npu_init.npu_distributed_optimizer_wrapper(average=) (not in %s)" % (npu, wrapper, where),
        '%s:%d parameter_map["use_offline"].b (not in %s)' % (npu, key, where),
        '%s:%d parameter_map["precision_mode"].b (not in %s: it reads .s)' % (npu, field, where),
        "%s:%d custom optimizer 'NPUOptimizer' (not in %s: it reads 'NpuOptimizer')" % (npu, name, where),
        "%s:%d precision_mode 'fp8' (not in %s)" % (npu, mode, where),
    ])


def test_the_project_passes_the_npu_bridge_check():
    api = recorded.load()
    assert check_npu_bridge.walk_findings(ROOT, api) == []
    assert check_npu_bridge.config_findings(ROOT, api) == []


# -- the walk's mechanics, on a small library and project written here -------------------------

FAKE_LIBRARY = {
    "tensorflow/__init__.py": (
        "from tensorflow.engine import Layer, Model\n"
        "__version__ = '1.15.5'\n"
        "def old_function(a, b=1, name=None):\n    pass\n"),
    "tensorflow/engine.py": (
        "class Base(object):\n"
        "    def __init__(self, name=None, dtype=None, **kwargs):\n"
        "        allowed_kwargs = {'input_shape', 'weights'}\n"
        "        generic_utils.validate_kwargs(kwargs, allowed_kwargs)\n"
        "        self.built = False\n"
        "    def add_weight(self, name, shape, initializer=None):\n        pass\n"
        "class Layer(Base):\n"
        "    def __init__(self, units, activation=None, **kwargs):\n"
        "        super(Layer, self).__init__(**kwargs)\n"
        "class Model(Base):\n"
        "    def fit(self, x=None, epochs=1):\n        pass\n"),
}

FAKE_PROJECT = {
    "densenet3d_keras/__init__.py": "",
    "densenet3d_keras/core/__init__.py": "",
    "densenet3d_keras/core/compat.py": (
        "import tensorflow as tf\n"
        "IS_TF1 = tf.__version__.startswith('1.')\n"
        "def graph_mode():\n    return IS_TF1 or tf.executing_eagerly()\n"
        "def tf2_only():\n    return tf.new_in_two()\n"),
    "app.py": (
        "from densenet3d_keras.core import compat\n"
        "from densenet3d_keras.core.compat import tf\n"
        "class Dense(tf.Layer):\n"
        "    def __init__(self, **kwargs):\n"
        "        super(Dense, self).__init__(4, input_shape=(2,), **kwargs)\n"
        "    def build(self, shape):\n"
        "        self.add_weight('w', (2,), initializer='zeros', trainable=True)\n"  # line 7
        "def run():\n"
        "    layer = Dense(name='d')\n"
        "    layer.missing_method()\n"  # line 10
        "    tf.old_function(1, 2, 3, 4)\n"
        "    tf.old_function()\n"
        "    tf.Layer(3, input_shape=(1,), bogus=1)\n"
        "    model = tf.Model()\n"
        "    model.fit(x=1, epochs=2, workers=4)\n"  # line 15
        "    if compat.graph_mode():\n"
        "        return\n"
        "    tf.new_in_two()\n"
        "def guarded():\n"
        "    if not compat.IS_TF1:\n"
        "        return compat.tf2_only()\n"
        "    return tf.old_function(1, name='x')\n"),
}


def _write(folder, files):
    for path, text in files.items():
        full = os.path.join(folder, path)
        if not os.path.isdir(os.path.dirname(full)):
            os.makedirs(os.path.dirname(full))
        with open(full, "w") as handle:
            handle.write(text)
    return folder


def test_walk_checks_signatures_inherited_members_and_skips_what_guards_exclude(tmp_path):
    from tools.conformance import values

    library = Library(FolderTree(_write(str(tmp_path / "lib"), FAKE_LIBRARY)), "FAKE")
    root = _write(str(tmp_path / "project"), FAKE_PROJECT)
    facts = {"densenet3d_keras.core.compat": {"IS_TF1": values.Const(True)}}
    walk = Walk(library, root, ("tensorflow",), facts)
    assert _lines(walk.run(["app", "densenet3d_keras.core.compat"])) == [
        "app.py:7 tf.Layer.add_weight(trainable=) (not in FAKE)",
        "app.py:10 tf.Layer.missing_method (not in FAKE)",
        "app.py:11 tf.old_function() takes at most 3 positional argument(s) in FAKE, given 4",
        "app.py:12 tf.old_function() needs argument a in FAKE",
        "app.py:13 tf.Layer(bogus=) (not in FAKE)",
        "app.py:15 tf.Model.fit(workers=) (not in FAKE)",
    ]
