"""``ariadne demo`` starts a relay process, opens Alice's and Bob's windows and exits cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parents[2]


def run_demo(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "client.cli",
            "demo",
            "--data-dir",
            str(data_dir),
            "--lifetime",
            "2",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )


def test_demo_opens_two_windows_and_closes_cleanly_twice(tmp_path):
    for _ in range(2):  # the second run reuses the accounts and the relay's data
        result = run_demo(tmp_path)
        assert result.returncode == 0, result.stderr
        assert "window: Ariadne — alice (Alice's desktop)" in result.stdout
        assert "window: Ariadne — bob (Bob's desktop)" in result.stdout
        assert "demo: closed cleanly" in result.stdout
        assert "Traceback" not in result.stderr
    assert (tmp_path / "relay" / "relay.sqlite3").exists()
