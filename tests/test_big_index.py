"""64-bit index math (issue 9, catalogue R9): a kernel on an input of more than 2^31 elements.

It needs about 12 GiB of available memory (6 GiB of it touched: the output and its int64 indices)
and about 20 s: it runs when that much memory is available and is skipped otherwise, or with
CNNX_BIG_TESTS=0. The input is np.zeros (pages read as the shared zero page) with a few
sentinels, two of them past element 2^31, so a 32-bit index anywhere would misplace or lose them.
"""
import os

import numpy as np
import pytest

from cnnx import kernels

pytestmark = pytest.mark.skipif(os.environ.get("CNNX_BIG_TESTS") == "0",
                                reason="CNNX_BIG_TESTS=0: the > 2^31-element tests are switched off")


def _available_bytes():
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return 0


def test_max_pool_beyond_2_31_elements():
    n, c, h, w = 2, 1, 32768, 32770
    assert n * c * h * w > 2**31
    if _available_bytes() < 12 * 2**30:
        pytest.skip("needs about 12 GiB of available memory")
    x = np.zeros((n, c, h, w), np.float32)
    sentinels = [(0, 0, 0, 0, 1.0), (0, 0, h - 1, w - 1, 2.0), (1, 0, 0, 5, 3.0), (1, 0, h - 2, w - 3, 4.0),
                 (1, 0, h // 2 + 1, 12345, 5.0)]
    for i, j, r, s, v in sentinels:
        x[i, j, r, s] = v
    assert np.ravel_multi_index((1, 0, h - 2, w - 3), x.shape) > 2**31
    y, idx = kernels.max_pool2d_forward(x, 2)
    assert y.shape == (n, c, h // 2, w // 2)
    for i, j, r, s, v in sentinels:
        assert y[i, j, r // 2, s // 2] == v
        assert idx[i, j, r // 2, s // 2] == r * w + s
    assert np.count_nonzero(y) == len(sentinels)
