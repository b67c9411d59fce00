"""mypy passes with the settings in pyproject.toml: strict on ``shared``, ``client/core`` and
``relay`` but for the modules listed there. The test command is the one gate CI runs, so mypy
runs in it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_is_clean() -> None:
    result = subprocess.run(
        # No cache: a stale one could hide an error; a cold run takes a few seconds.
        [sys.executable, "-m", "mypy", "--cache-dir", "/dev/null"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
