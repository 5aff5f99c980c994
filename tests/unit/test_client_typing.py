"""The client package is fully typed: `mypy --strict` finds nothing (py.typed ships it to users)."""
from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_mypy_strict_on_the_client_package():
    proc = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", "pyetcd/client"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert os.path.exists(os.path.join(ROOT, "pyetcd", "py.typed"))
