"""The README's run command works: the headless demo starts a relay process and tells the story."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parents[2]


def test_headless_chat_demo_runs_end_to_end(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "client.cli", "chat-demo", "--headless", "--workdir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "received in 'alice' from alice: Bring the map." in out
    assert out.count("alice: Secret plans for Saturday  [") == 3  # shown on all three devices
    relay_table = out.split("ciphertext (first 24 bytes)")[1].split("No plaintext")[0]
    rows = relay_table.strip().splitlines()
    assert len(rows) == 2 and "Secret" not in relay_table
    assert "the laptop says it was removed: True" in out
    assert "Bob's client encrypts to Alice's: ['Desktop']" in out
    assert "The laptop is gone" not in out.split("the laptop's last message")[1]
    assert "Traceback" not in result.stderr
