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


def test_demo_walks_through_approving_and_then_revoking_alices_laptop(qtbot, qloop, tmp_path):
    import asyncio

    from client.gui.app import demo

    ready: dict[str, object] = {}
    run = asyncio.ensure_future(
        demo(tmp_path, laptop=True, on_ready=lambda w, s: ready.update(windows=w, step=s))
    )
    qtbot.waitUntil(lambda: "step" in ready or run.done(), timeout=60_000)
    desktop, bob_window = ready["windows"]
    step = ready["step"]
    laptop = step.client
    qtbot.waitUntil(lambda: laptop.device_id in desktop.approvals, timeout=15_000)
    approval = desktop.approvals[laptop.device_id]
    qtbot.waitUntil(lambda: approval.approve.isEnabled(), timeout=15_000)
    qtbot.waitUntil(lambda: step.dialog.pairing_code.text() == approval.code.text(), timeout=15_000)
    step.dialog.confirm.click()
    approval.approve.click()
    qtbot.waitUntil(lambda: step.window is not None, timeout=15_000)
    assert step.window.windowTitle() == "Ariadne — alice (Alice's laptop)"

    panel = desktop.show_own_devices()
    panel.ask_remove(laptop.device_id, "Alice's laptop", confirm=False)
    qtbot.waitUntil(lambda: laptop.removed and step.window.banner.isVisible(), timeout=15_000)
    panel.close()
    for window in (desktop, bob_window):
        window.close()
    qtbot.waitUntil(run.done, timeout=30_000)
    assert run.result() == 0
