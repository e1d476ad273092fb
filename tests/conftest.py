import contextlib

import pytest

import cnnx
from cnnx import _C

ISAS = list(_C.available_isas())
FAST_ISAS = [name for name in ISAS if name != "ref"]


@contextlib.contextmanager
def _switched(get, set_, value):
    """Run the block with the process-wide setting `set_(value)`, then put back what `get()` gave."""
    previous = get()
    set_(value)
    try:
        yield value
    finally:
        set_(previous)


def using_isa(name):
    """Run the block on the ISA path `name`, then switch back to whatever was active."""
    return _switched(_C.isa, _C.set_isa, name)


def num_threads(n):
    """Run the block with `n` kernel threads, then restore the previous setting."""
    return _switched(cnnx.get_num_threads, cnnx.set_num_threads, n)


@pytest.fixture(params=ISAS)
def isa(request):
    """Every ISA path this CPU can run (``ref`` included), active for the duration of the test."""
    with using_isa(request.param):
        yield request.param


@pytest.fixture(params=FAST_ISAS)
def fast_isa(request):
    """Every optimised ISA path (all but the ``ref`` oracle), active for the duration of the test."""
    with using_isa(request.param):
        yield request.param


def using_conv_algorithm(name):
    """Run the block with dense convolutions computed by `name` ('auto', 'gemm', 'direct', 'winograd' or 'rows')."""
    return _switched(_C.conv_algorithm, _C.set_conv_algorithm, name)


@pytest.fixture(params=["auto", "gemm", "direct", "winograd", "rows"])
def conv_algorithm(request):
    """Each way of computing dense convolutions: as chosen per shape, and each algorithm forced
    wherever it can run (so all are checked on every grid shape, not only where auto picks them)."""
    with using_conv_algorithm(request.param):
        yield request.param


@pytest.fixture
def restore_threads():
    """Put the kernel thread count back however the test changed it."""
    previous = cnnx.get_num_threads()
    yield previous
    cnnx.set_num_threads(previous)
