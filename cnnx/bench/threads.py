"""``cnnx bench threads``: the same kernel calls on 1 and on 2 Python threads (1 OpenMP thread each).

A speed-up above 1 shows that kernels release the GIL and that two Python threads really run on two
cores (issue 9). ``tests/test_threads.py`` checks the GIL release itself without timing; this suite
measures what it buys. PyTorch, when installed, runs the same experiment as an anchor.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from ._timing import format_table, steady_allocator, torch_or_none

CALLS = 32


def _wall(fn, n_threads: int, calls: int) -> float:
    share = [calls // n_threads] * n_threads

    def run(k):
        for _ in range(k):
            fn()

    threads = [threading.Thread(target=run, args=(k,)) for k in share]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def run(args) -> str:
    import cnnx
    from cnnx import kernels

    steady_allocator()
    rng = np.random.default_rng(0)
    dtype = np.float64 if args.double else np.float32
    x = rng.standard_normal((4, 32, 28, 28)).astype(dtype)
    w = rng.standard_normal((32, 32, 3, 3)).astype(dtype)
    libs = {"cnnx": lambda: kernels.conv2d_forward(x, w, padding=1)}
    cnnx.set_num_threads(1)
    torch = torch_or_none(1)  # one intra-op thread per call, like cnnx
    if torch is not None:
        tx, tw = torch.from_numpy(x), torch.from_numpy(w)
        libs["torch"] = lambda: torch.nn.functional.conv2d(tx, tw, padding=1)
    rows = []
    for name, fn in libs.items():
        fn(), fn()  # warm up
        speedups = []
        for _ in range(args.rounds):
            time.sleep(0.1)
            one = _wall(fn, 1, CALLS)
            time.sleep(0.1)
            two = _wall(fn, 2, CALLS)
            speedups.append(one / two)
        speedups.sort()
        rows.append([name, f"{CALLS} x conv 4x32x28x28 3x3", f"{speedups[len(speedups) // 2]:.2f}",
                     f"{speedups[0]:.2f}-{speedups[-1]:.2f}"])
    head = ["library", "work", "speed-up 2 vs 1 Python threads (median)", "range"]
    return format_table(head, rows, args.markdown)
