"""Shared helpers of the layer kernel tests (pooling, LRN, batch norm)."""
import subprocess
import sys
import tempfile

import numpy as np
import pytest

DTYPES = [np.float32, np.float64]

# Child interpreters start outside the checkout, so they import the installed cnnx and not the
# source folder (which has no compiled _C in a non-editable install).
OUTSIDE_REPO = tempfile.gettempdir()


def assert_within(got, value, bound, what=""):
    """|got - value| <= bound elementwise (NaN anywhere fails), with a readable report."""
    got = np.asarray(got)
    assert got.shape == value.shape, f"{what}: shape {got.shape} != {value.shape}"
    err = np.abs(got.astype(np.float64) - value)
    bad = ~(err <= bound)
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, np.nan_to_num(err - bound, nan=np.inf), -np.inf)), bad.shape)
        pytest.fail(f"{what}: {int(bad.sum())} of {bad.size} elements outside the bound; worst at "
                    f"{tuple(int(v) for v in i)}: got {got[i]!r}, expected {value[i]!r}, bound {np.broadcast_to(bound, bad.shape)[i]!r}")


def same_with_nan(a, b):
    """Equal values, NaN where the other has NaN, equal signs of infinities."""
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


def numeric_grad(f, x, g, eps=1e-6):
    """Central differences of sum(f(x) * g) with respect to every element of x (float64)."""
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = np.sum(f(x) * g)
        flat[i] = old - eps
        minus = np.sum(f(x) * g)
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


def noncontiguous(x):
    """The same values in a strided view whose gaps hold NaN (-7 for integers): stray reads show up."""
    big = np.full(x.shape[:-1] + (2 * x.shape[-1],), np.nan if x.dtype.kind == "f" else -7, x.dtype)
    view = big[..., ::2]
    view[...] = x
    return view


FENCE_PRELUDE = r"""
import ctypes, mmap
import numpy as np

PAGE = mmap.PAGESIZE
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


def fenced(x, at_end=True):
    # A C-ordered copy of x whose memory ends (or starts) exactly at an inaccessible page.
    pages = max(1, -(-x.nbytes // PAGE))
    base = libc.mmap(None, (pages + 2) * PAGE, 3, 0x22, -1, 0)
    assert base not in (None, ctypes.c_void_p(-1).value)
    assert libc.mprotect(base, PAGE, 0) == 0
    assert libc.mprotect(base + (pages + 1) * PAGE, PAGE, 0) == 0
    start = base + PAGE + (pages * PAGE - x.nbytes if at_end else 0)
    raw = (ctypes.c_char * max(x.nbytes, 1)).from_address(start)
    y = np.frombuffer(raw, x.dtype, count=x.size).reshape(x.shape)
    y[...] = x
    return y
"""


def run_fenced(body):
    """Runs FENCE_PRELUDE + body in a child interpreter (a stray access kills only the child);
    the body prints progress lines and finally "done". Skips the calling test off Linux (the guard
    pages are set with Linux mmap/mprotect)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("guard pages are set with Linux mmap/mprotect")
    proc = subprocess.run([sys.executable, "-c", FENCE_PRELUDE + body], capture_output=True, text=True,
                          timeout=300, cwd=OUTSIDE_REPO)
    last = proc.stdout.strip().splitlines()[-1:] or [""]
    assert proc.returncode == 0 and last == ["done"], (
        f"exit {proc.returncode} during case: {last[0]}\n{proc.stderr[-2000:]}")
