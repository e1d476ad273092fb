import re
import subprocess
import tempfile
import sys

from cnnx import _C
from cnnx.cli import main

# Child interpreters start outside the checkout, so they import the installed cnnx and not the
# source folder (which has no compiled _C in a non-editable install).
OUTSIDE_REPO = tempfile.gettempdir()


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "cnnx", *args], capture_output=True, text=True, timeout=120,
                          cwd=OUTSIDE_REPO)


def test_info_prints_configuration():
    proc = run_cli("info")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^isa\s+\S+$", proc.stdout, re.MULTILINE), proc.stdout
    assert re.search(r"^version\s+\S+$", proc.stdout, re.MULTILINE), proc.stdout


def test_info_in_process_reports_active_isa(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^isa\s+{re.escape(_C.isa())}$", out, re.MULTILINE), out


def test_unknown_subcommand_fails():
    proc = run_cli("frobnicate")
    assert proc.returncode != 0
    assert "frobnicate" in proc.stderr


def test_missing_subcommand_fails():
    proc = run_cli()
    assert proc.returncode != 0
    assert "usage" in proc.stderr.lower()


def test_help_lists_subcommands():
    proc = run_cli("--help")
    assert proc.returncode == 0
    assert "info" in proc.stdout and "bench" in proc.stdout
