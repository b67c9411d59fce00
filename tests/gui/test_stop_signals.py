"""Ctrl+C and SIGTERM stop ``ariadne demo`` cleanly: every window closes, both devices and the
relay child stop, no traceback, exit code 0; a second signal is not ignored."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]


class Demo:
    """``ariadne demo`` as a user starts it in a terminal (its own process group, so a signal
    to the group is what Ctrl+C sends), read line by line with a deadline."""

    def __init__(self, data_dir: Path, *arguments: str) -> None:
        command = arguments or ("demo", "--data-dir", str(data_dir))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "client.cli", *command],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        )
        self.stdout: list[str] = []
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        # The relay child shares stderr: it reaches its end once the relay is gone too.
        self.stderr_done = threading.Thread(target=self._read_stderr, daemon=True)
        self.stderr_done.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        self.stderr.extend(self.process.stderr)

    def wait_for_line(self, pattern: str, timeout: float = 90.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=deadline - time.monotonic())
            except queue.Empty:
                break
            if line is None:
                break
            self.stdout.append(line)
            found = re.search(pattern, line)
            if found:
                return found
        os.killpg(self.process.pid, signal.SIGKILL)
        raise AssertionError(f"no {pattern!r} in {self.stdout}")

    def finish(self, timeout: float = 60.0) -> tuple[int, str, str]:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            raise AssertionError(f"still running after the signal: {self.stdout}") from None
        self.stderr_done.join(timeout)
        err = "".join(self.stderr)
        while (line := self.lines.get(timeout=timeout)) is not None:
            self.stdout.append(line)
        return self.process.returncode, "".join(self.stdout), err


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def _started(data_dir: Path) -> tuple[Demo, int]:
    demo = Demo(data_dir)
    port = int(demo.wait_for_line(r"relay: ws://127\.0\.0\.1:(\d+)").group(1))
    demo.wait_for_line(r"window: Ariadne — bob")
    return demo, port


@pytest.mark.parametrize(
    ("sig", "to_group"),
    [(signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["ctrl-c-to-the-terminal-group", "sigterm-to-the-demo-alone"],
)
def test_a_signal_closes_the_windows_the_devices_and_the_relay(tmp_path, sig, to_group):
    demo, port = _started(tmp_path)
    if to_group:
        os.killpg(demo.process.pid, sig)
    else:
        demo.process.send_signal(sig)
    code, out, err = demo.finish()
    assert code == 0, err
    assert "demo: closed cleanly" in out
    assert "Traceback" not in err
    assert f"ariadne: {sig.name}: closing" in err
    assert _refused(port), "the relay child is still listening"


def test_a_second_signal_is_not_ignored(tmp_path):
    demo, port = _started(tmp_path)
    demo.process.send_signal(signal.SIGTERM)
    demo.process.send_signal(signal.SIGTERM)
    code, _out, err = demo.finish()
    assert code in (0, 128 + signal.SIGTERM), err
    assert "Traceback" not in err
    assert _refused(port), "the relay child is still listening"


def test_a_signal_during_start_up_is_not_lost(tmp_path):
    """The handlers are in place before the relay starts: SIGTERM while the devices are still
    logging in (no window yet) stops everything too, instead of killing the demo and orphaning
    the relay (which, holding the terminal's stderr, kept whoever waited on it waiting)."""
    demo = Demo(tmp_path)
    port = int(demo.wait_for_line(r"relay: ws://127\.0\.0\.1:(\d+)").group(1))
    demo.process.send_signal(signal.SIGTERM)
    code, out, err = demo.finish()
    assert code == 0, err
    assert "demo: closed cleanly" in out
    assert "Traceback" not in err
    assert _refused(port), "the relay child is still listening"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_closes_a_single_profile_window_cleanly(tmp_path, sig):
    """``ariadne --profile``: the same handling (Alice's profile from a demo run, its relay
    started on its own as a user would)."""
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "client.cli",
            "demo",
            "--data-dir",
            str(tmp_path),
            "--lifetime",
            "1",
        ],
        cwd=REPO,
        capture_output=True,
        timeout=120,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        check=True,
    )
    assert made.returncode == 0
    relay = subprocess.Popen(
        [sys.executable, "-m", "relay", "--port", "0", "--data-dir", str(tmp_path / "relay")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert relay.stdout is not None
        url = relay.stdout.readline().rsplit(" ", 1)[1].strip()
        app = Demo(tmp_path, "--profile", str(tmp_path / "alice"), "--relay", url)
        app.wait_for_line(r"window: Ariadne — alice")
        os.killpg(app.process.pid, sig)
        code, _out, err = app.finish()
        assert code == 0, err
        assert "Traceback" not in err and f"ariadne: {sig.name}: closing" in err
    finally:
        relay.terminate()
        relay.wait(timeout=30)
