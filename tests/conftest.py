import contextlib

import pytest

import cnnx
from cnnx import _C

ISAS = list(_C.available_isas())
FAST_ISAS = [name for name in ISAS if name != "ref"]


@contextlib.contextmanager
def using_isa(name):
    """Run the block on the ISA path `name`, then switch back to whatever was active."""
    previous = _C.isa()
    _C.set_isa(name)
    try:
        yield name
    finally:
        _C.set_isa(previous)


@contextlib.contextmanager
def num_threads(n):
    """Run the block with `n` kernel threads, then restore the previous setting."""
    previous = cnnx.get_num_threads()
    cnnx.set_num_threads(n)
    try:
        yield n
    finally:
        cnnx.set_num_threads(previous)


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


@contextlib.contextmanager
def using_conv_algorithm(name):
    """Run the block with dense convolutions computed by `name` ('auto', 'gemm', 'direct', 'winograd' or 'rows')."""
    previous = _C.conv_algorithm()
    _C.set_conv_algorithm(name)
    try:
        yield name
    finally:
        _C.set_conv_algorithm(previous)


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
