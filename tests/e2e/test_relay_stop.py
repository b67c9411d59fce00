"""``ariadne-relay`` stops cleanly however many stop requests reach it: Ctrl+C reaches the whole
process group and a supervisor (the demo, a service manager) asks again, so more signals arrive
while the relay closes, some after its event loop is gone. The first one stops it; the rest must
change nothing: no traceback, no death by signal, exit status 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from websockets.sync.client import connect

from shared import wire

REPO = Path(__file__).parents[2]
RELAY_PROCESS = Path(__file__).with_name("relay_process.py")


def test_stop_requests_after_the_first_are_ignored_while_the_relay_closes(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "relay", "--port", "0", "--data-dir", str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        url = process.stdout.readline().rsplit(" ", 1)[1].strip()
        # It serves: its event loop runs, with its handlers for stop requests in place.
        with connect(url, max_size=wire.MAX_FRAME_BYTES) as ws:
            assert isinstance(wire.decode_relay_frame(ws.recv(timeout=30)), wire.Challenge)
        process.send_signal(signal.SIGTERM)
        # Ctrl+C and SIGTERM, again and again, until it has exited: they land at every stage of
        # its closing, including after its event loop closed.
        deadline = time.monotonic() + 60
        signals = [signal.SIGINT, signal.SIGTERM]
        while process.poll() is None and time.monotonic() < deadline:
            try:
                os.kill(process.pid, signals[0])
            except ProcessLookupError:
                break
            signals.reverse()
            time.sleep(0.0005)  # a flood, not a wait: the loop's condition is the exit
        code = process.wait(timeout=30)
        err = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "Traceback" not in err, err
    assert code == 0, (code, err)


def test_a_stop_request_inside_the_handler_swap_is_held_back_until_it_is_ignored(
    tmp_path: Path,
) -> None:
    """The relay stops on its first request, then swaps its handlers for 'ignore'. Between
    removing the loop's handler and ignoring the signal, the signal's default action is in
    place (death for SIGTERM, KeyboardInterrupt for SIGINT): the relay blocks both signals
    for the swap. The test process sends each signal exactly there (``relay_process.py``)."""
    process = subprocess.Popen(
        [sys.executable, str(RELAY_PROCESS), "--port", "0", "--data-dir", str(tmp_path)],
        cwd=REPO,
        env={**os.environ, "ARIADNE_SIGNAL_IN_SWAP": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().rsplit(" ", 1)[1].strip()
        with connect(url, max_size=wire.MAX_FRAME_BYTES) as ws:
            assert isinstance(wire.decode_relay_frame(ws.recv(timeout=30)), wire.Challenge)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    for sig in ("SIGINT", "SIGTERM"):
        assert f"signalled in the swap: {sig}" in err, err  # the window was reached
    assert "Traceback" not in err, err
    assert process.returncode == 0, (process.returncode, err)
