import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests import the shared op-spec table


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _why_no_opencl() -> str | None:
    try:
        from staticgraph.runtime.opencl import OpenCLUnavailable, get_device
        get_device()
    except OpenCLUnavailable as exc:
        return str(exc)
    return None


NO_OPENCL = _why_no_opencl()
requires_opencl = pytest.mark.skipif(NO_OPENCL is not None, reason=f"no OpenCL: {NO_OPENCL}")
BACKENDS = ["numpy", pytest.param("opencl", marks=requires_opencl)]


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """Both compiled runtimes: the numpy one and the OpenCL one (skipped, saying why, where no
    OpenCL platform exists)."""
    return request.param
