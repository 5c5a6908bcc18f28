import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.abspath(os.environ.get("NVCAFFE_SHARED", os.path.join(HERE, "..", "..", "shared")))
# pycaffe-style Python layer modules used by the tests (e.g. `pyloss`) live here.
sys.path.insert(0, os.path.join(HERE, "pycaffe_modules"))


def shared_path(*parts):
    """A path under ../shared, or skip the test with the reason when it is absent."""
    path = os.path.join(SHARED, *parts)
    if not os.path.exists(path):
        pytest.skip(f"shared test material not found: {path} (expected ../shared beside the checkout)")
    return path


@pytest.fixture(autouse=True)
def _cpu_mode_and_seed():
    import nvcaffe_py

    nvcaffe_py.set_mode_cpu()
    nvcaffe_py.set_random_seed(1234)
    yield
