"""Code shared between ISAs runs with baseline instructions.

The kernels are compiled once per ISA (AVX-512, AVX2, generic). Whatever those files instantiate
outside their ISA's namespace (``std::vector<int>::assign``, inline functions of shared headers) is
emitted in each ISA's objects, and a linker keeps one copy of such a symbol for the whole library.
If it keeps the AVX-512 copy, AVX2 and baseline code call AVX-512 instructions, and the library
dies with SIGILL on a CPU without AVX-512, even though the dispatcher chose AVX2. CMakeLists.txt
merges each ISA's objects and makes every symbol but its kernel table local, so that cannot happen.

This test checks the built module: every function the linker could share (global or weak binding)
must be free of VEX and EVEX instructions unless its name ties it to one ISA's namespace. It runs on
any x86-64 CPU, so a CI machine with AVX-512 catches what only a machine without it would show.
"""
import bisect
import platform
import re
import shutil
import subprocess

import pytest

import cnnx._C

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                                reason="the check reads x86-64 instruction encodings")

LEGACY_PREFIXES = {"66", "67", "f2", "f3", "2e", "3e", "26", "64", "65", "36", "f0"}
# A mangled name that mentions an ISA's namespace (a function in it, a lambda inside one, a template
# over one of its types) can only come from that ISA's objects.
ISA_NAMESPACES = {"evex": ("4cnnx6avx512",), "vex": ("4cnnx6avx512", "4cnnx4avx2")}


def encoding(raw_bytes):
    """'evex', 'vex' or None for one instruction's bytes (hex strings). In 64-bit mode 0x62 opens
    only EVEX and 0xc4/0xc5 only VEX, after any legacy prefixes (REX cannot precede either)."""
    for b in raw_bytes:
        if b in LEGACY_PREFIXES:
            continue
        return {"62": "evex", "c4": "vex", "c5": "vex"}.get(b)
    return None


def shareable_functions(path):
    """[(start, end, mangled name)] of the defined functions with global or weak binding."""
    out = subprocess.run(["readelf", "-sW", path], capture_output=True, text=True, check=True).stdout
    found = set()
    for line in out.splitlines():
        f = line.split()
        # Num: Value Size Type Bind Vis Ndx Name
        if len(f) >= 8 and f[3] == "FUNC" and f[4] in ("GLOBAL", "WEAK") and f[6] != "UND":
            start, size = int(f[1], 16), int(f[2], 0)
            if size:
                found.add((start, start + size, f[7].split("@")[0]))
    return sorted(found)


def test_shared_code_uses_no_isa_instructions():
    if not (shutil.which("readelf") and shutil.which("objdump")):
        pytest.skip("needs binutils (readelf, objdump)")
    if "baseline code with AVX" in cnnx._C.compiler():
        pytest.skip("a build for this CPU only (CNNX_NATIVE=ON): its baseline code uses AVX on purpose")
    path = cnnx._C.__file__
    sections = subprocess.run(["readelf", "-SW", path], capture_output=True, text=True, check=True).stdout
    assert ".symtab" in sections, "the module is stripped: CMakeLists.txt (NO_EXTRAS) and pyproject.toml " \
                                  "(install.strip = false) keep its symbol table, and this check needs it"
    funcs = shareable_functions(path)
    assert any(name == "_ZN4cnnx6avx51212kernel_tableEv" for _, _, name in funcs), \
        "cnnx::avx512::kernel_table() should be the AVX-512 objects' one global function"
    starts = [f[0] for f in funcs]
    disassembly = subprocess.run(["objdump", "-d", "-w", "--section=.text", path],
                                 capture_output=True, text=True, check=True).stdout
    line_re = re.compile(r"^\s*([0-9a-f]+):\t((?:[0-9a-f]{2} )+)")
    offenders = {}
    for line in disassembly.splitlines():
        m = line_re.match(line)
        if not m:
            continue
        kind = encoding(m.group(2).split())
        if kind is None:
            continue
        address = int(m.group(1), 16)
        i = bisect.bisect_right(starts, address) - 1
        if i < 0 or address >= funcs[i][1]:
            continue  # a local function: only its own ISA's objects can call it
        name = funcs[i][2]
        if not any(ns in name for ns in ISA_NAMESPACES[kind]):
            offenders.setdefault(name, (kind, line.strip()))
    listed = "\n".join(f"{kind}: {name}\n    {line}" for name, (kind, line) in sorted(offenders.items()))
    assert not offenders, f"shareable functions with ISA instructions (run c++filt on the names):\n{listed}"
