import json
import os
import re
import subprocess
import tempfile
import sys
from pathlib import Path

import numpy as np
import pytest

import cnnx
from cnnx import _C
from conftest import ISAS, using_isa

# Child interpreters start outside the checkout, so they import the installed cnnx and not the
# source folder (which has no compiled _C in a non-editable install).
OUTSIDE_REPO = tempfile.gettempdir()

CONFIG_KEYS = {"version", "compiler", "isa", "isa_built", "isa_available", "openmp", "num_threads",
               "cuda_built", "cuda_available"}


def test_version_matches_version_file():
    text = (Path(cnnx.__file__).parent / "_version.py").read_text()
    (declared,) = re.findall(r"""__version__\s*=\s*["']([^"']+)["']""", text)
    assert cnnx.__version__ == declared
    assert _C.version() == declared  # the compiled core is from the same release


def test_show_config_keys_and_values():
    config = cnnx.show_config()
    assert CONFIG_KEYS <= set(config)
    assert config["version"] == cnnx.__version__
    assert config["isa"] == _C.isa()
    assert config["isa"] in config["isa_available"]
    assert config["isa_available"] == ISAS and config["isa_available"][-1] == "ref"
    assert set(config["isa_available"]) <= set(config["isa_built"])
    assert config["num_threads"] == cnnx.get_num_threads() >= 1
    assert isinstance(config["openmp"], bool) and isinstance(config["compiler"], str) and config["compiler"]
    assert config["cuda_built"] is False and config["cuda_available"] is False


def test_show_config_tracks_isa_switch(isa):
    assert cnnx.show_config()["isa"] == isa


def test_show_config_prints_only_when_asked(capsys):
    config = cnnx.show_config()
    assert capsys.readouterr().out == ""
    assert cnnx.show_config(print=True) == config
    out = capsys.readouterr().out
    for key in CONFIG_KEYS:
        assert re.search(rf"^{key}\s", out, re.MULTILINE), key
    assert re.search(rf"^isa\s+{re.escape(config['isa'])}$", out, re.MULTILINE)


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_num_threads_round_trip(n, restore_threads):
    cnnx.set_num_threads(n)
    assert cnnx.get_num_threads() == n
    assert cnnx.show_config()["num_threads"] == n


def test_num_threads_accepts_numpy_int(restore_threads):
    cnnx.set_num_threads(np.int64(2))
    assert cnnx.get_num_threads() == 2


@pytest.mark.parametrize("n,exc", [(0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError),
                                   ("2", TypeError), (None, TypeError), (2.0, TypeError)])
def test_set_num_threads_rejects(n, exc, restore_threads):
    before = cnnx.get_num_threads()
    with pytest.raises(exc, match="n must"):
        cnnx.set_num_threads(n)
    assert cnnx.get_num_threads() == before


def test_set_isa_rejects_unknown_name():
    before = _C.isa()
    with pytest.raises(ValueError, match="bogus"):
        _C.set_isa("bogus")
    assert _C.isa() == before


def _import_in_subprocess(cnnx_isa):
    """Import cnnx in a fresh interpreter with CNNX_ISA set; report the ISA and the warnings."""
    code = (
        "import json, warnings\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    import cnnx\n"
        "print(json.dumps({'isa': cnnx._C.isa(), 'available': cnnx._C.available_isas(),\n"
        "                  'warnings': [[w.category.__name__, str(w.message)] for w in caught\n"
        "                               if 'cnnx' in str(w.message).lower()]}))\n"
    )
    env = dict(os.environ, CNNX_ISA=cnnx_isa)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                          cwd=OUTSIDE_REPO)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("name", ISAS)
def test_cnnx_isa_env_selects_path(name):
    result = _import_in_subprocess(name)
    assert result["isa"] == name
    assert result["warnings"] == []


def test_cnnx_isa_env_empty_means_best():
    result = _import_in_subprocess("")
    assert result["isa"] == ISAS[0]
    assert result["warnings"] == []


def test_cnnx_isa_env_unknown_warns_and_falls_back():
    result = _import_in_subprocess("bogus")
    assert result["isa"] == result["available"][0] == ISAS[0]
    assert len(result["warnings"]) == 1
    category, message = result["warnings"][0]
    assert category == "RuntimeWarning"
    assert "bogus" in message and ISAS[0] in message


# The arithmetic-peak probe behind `cnnx bench`'s % peak column (cnnx/peak.h).
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fma_peak_is_a_rate(isa, dtype):
    for threads in (1, 2):
        # Every reading a positive rate, and the best of three a real one: a shared VM that stalls
        # the thread for most of a 20 ms probe lowers one reading (seen once on an AMD EPYC VM:
        # 0.095 GFLOP/s for code that runs at 40), never all three, while a broken probe fails all.
        rates = [_C.fma_peak(threads, 0.02, dtype) for _ in range(3)]
        assert all(np.isfinite(r) and r > 0 for r in rates), (isa, threads, rates)
        assert max(rates) > 0.1, (isa, threads, rates)


def test_fma_peak_vector_isas_beat_scalar_code(fast_isa):
    fast = _C.fma_peak(1, 0.05)
    with using_isa("ref"):
        scalar = _C.fma_peak(1, 0.05)
    assert fast > 1.5 * scalar, (fast_isa, fast, scalar)  # measured: avx512 247, avx2 124, generic 42, ref 18


@pytest.mark.parametrize("kwargs, name", [
    (dict(threads=0), "threads"), (dict(threads=-2), "threads"),
    (dict(seconds=0.0), "seconds"), (dict(seconds=-1.0), "seconds"), (dict(seconds=61.0), "seconds"),
    (dict(seconds=float("nan")), "seconds"), (dict(dtype="int32"), "dtype"),
])
def test_fma_peak_rejects_bad_arguments(kwargs, name):
    args = dict(threads=1, seconds=0.01, dtype="float32") | kwargs
    with pytest.raises(ValueError, match=name):
        _C.fma_peak(**args)


def test_bench_peak_option(capsys):
    import argparse
    from cnnx import bench

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    for bad in ("0", "-5", "fast"):
        with pytest.raises(SystemExit):
            parser.parse_args(["conv", "--peak", bad])
    assert "--peak" in capsys.readouterr().err
    assert parser.parse_args(["conv", "--peak", "400"]).peak == 400.0
    args = parser.parse_args(["conv", "--case", "lenet5_c1", "--rounds", "1", "--threads", "1"])
    assert args.peak is None  # measured in the run
    bench.main(args)
    out = capsys.readouterr().out
    (line,) = [s for s in out.splitlines() if s.startswith("% peak of ")]
    start, end = map(float, re.findall(r"([0-9.]+) GFLOP/s, measured at the start \(([0-9.]+) at the end\)", line)[0])
    assert start > 0 and end > 0 and "1 threads" in line
    # the % column divides by the measured start figure (both columns printed rounded to units: the
    # GFLOP/s by up to 0.5, the percentage by up to 0.5 points)
    row = [s for s in out.splitlines() if s.split()[:3] == ["lenet5_c1", "fwd", "1"]][0].split()
    pct = next(i for i, token in enumerate(row) if token.endswith("%"))
    assert abs(float(row[pct][:-1]) - 100 * float(row[pct - 1]) / args.peak) <= 0.5 + 50 / args.peak + 1e-9
