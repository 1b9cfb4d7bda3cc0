import subprocess
import sys

import reidlib
from reidlib.cli import main


def test_version_string():
    parts = reidlib.__version__.split(".")
    assert len(parts) == 3 and all(p.isdigit() for p in parts)


def test_help_runs_as_module():
    out = subprocess.run([sys.executable, "-m", "reidlib", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    assert "bench" in out.stdout and "info" in out.stdout


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert reidlib.__version__ in out and "device" in out


def test_unknown_benchmark(capsys):
    assert main(["bench", "no-such-bench"]) == 2
    assert "unknown benchmark 'no-such-bench'" in capsys.readouterr().err
