"""Shared fixtures: small synthetic datasets and a clean Keras session per test."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory):
    """Four labelled synthetic cases of 48x48x40 (3 train, 1 test), BraTS 2017 layout."""
    from generators.synthetic import write_dataset

    root = str(tmp_path_factory.mktemp("small_dataset"))
    write_dataset(root, n_cases=4, shape=(48, 48, 40), seed=3, splits=(0.75, 0.0, 0.25))
    return root


@pytest.fixture
def cache_dir(tmp_path):
    """A private preprocessing cache for one test."""
    return str(tmp_path / "cache")


@pytest.fixture
def keras_session():
    """Clear Keras state before and after a test that builds models."""
    from densenet3d_keras.core.compat import clear_session

    clear_session()
    yield
    clear_session()


#: The environment variable naming a folder of labelled BraTS cases for the real-data tests.
REAL_BRATS_ENV = "DENSENET3D_REAL_BRATS"


@pytest.fixture(scope="session")
def real_brats():
    """A folder of real, labelled BraTS cases: ``$DENSENET3D_REAL_BRATS``, else
    ``../shared/realbrats`` beside the project; the tests that need it are skipped without it."""
    root = os.environ.get(REAL_BRATS_ENV) or os.path.join(os.path.dirname(ROOT), "shared", "realbrats")
    if not os.path.isdir(root):
        pytest.skip("no real BraTS cases at %s (set %s to a folder of BraTS case folders)"
                    % (root, REAL_BRATS_ENV))
    return root
