"""Relays and devices in processes of their own, for tests that kill them for real (SIGKILL: no
cleanup, no checkpoint, no last commit), and the relay's write-ahead log cut as a power loss
leaves it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).parents[2]
DEVICE_PROCESS = Path(__file__).with_name("device_process.py")
RELAY_PROCESS = Path(__file__).with_name("relay_process.py")
FAULT_ENV = "ARIADNE_FAULT"  # the test-only fault hook of both scripts (off when unset)


def _env(fault: str | None, seed: int = 0) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "ARIADNE_FAULT_SEED": str(seed)}
    env.pop(FAULT_ENV, None)
    if fault:
        env[FAULT_ENV] = fault
    return env


@dataclass
class RelayProcess:
    """``python -m relay`` on 127.0.0.1; the first start picks a free port, restarts reuse it."""

    data_dir: Path
    port: int = 0
    process: asyncio.subprocess.Process | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def database(self) -> Path:
        return self.data_dir / "relay.sqlite3"

    async def start(self, fault: str | None = None, seed: int = 0) -> None:
        for _attempt in range(50):  # the port of a killed relay may take a moment to free
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(RELAY_PROCESS),
                *("--port", str(self.port), "--data-dir", str(self.data_dir)),
                *("--log-level", "WARNING"),
                cwd=REPO,
                env=_env(fault, seed),
                stdout=asyncio.subprocess.PIPE,
            )
            assert self.process.stdout is not None
            line = (await asyncio.wait_for(self.process.stdout.readline(), 30)).decode()
            if line.startswith("ariadne-relay listening on"):
                self.port = int(line.rsplit(":", 1)[1])
                self.starts += 1
                return
            await self.process.wait()
            await asyncio.sleep(0.1)
        raise RuntimeError("the relay process did not start")

    async def kill(self) -> None:
        """SIGKILL: what a crash (or a power cut, with :func:`cut_wal`) leaves."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()
        self.process = None

    @property
    def died(self) -> bool:
        """It ended by itself (its fault hook killed it)."""
        return self.process is not None and self.process.returncode is not None

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()
        self.process = None


@dataclass
class DeviceProcess:
    """One device profile served by ``device_process.py`` in its own process; what it prints is
    read as it comes (``sent``, ``done``, ``report``)."""

    profile: Path
    args: list[str] = field(default_factory=list)
    process: asyncio.subprocess.Process | None = None
    done: bool = False
    starts: int = 0
    _reports: asyncio.Queue[dict[str, list[list[str]]]] = field(default_factory=asyncio.Queue)
    _reader: asyncio.Task[None] | None = None

    async def start(self, fault: str | None = None, seed: int = 0) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(DEVICE_PROCESS),
            str(self.profile),
            *self.args,
            "--seed",
            str(seed),
            cwd=REPO,
            env=_env(fault, seed),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self.starts += 1
        self._reader = asyncio.create_task(self._read(self.process))

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            word, _, rest = line.decode().strip().partition(" ")
            if word == "done":
                self.done = True
            elif word == "report":
                self._reports.put_nowait(json.loads(rest))

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def died(self) -> bool:
        """It ended by itself (its fault hook killed it)."""
        return self.process is not None and self.process.returncode is not None

    async def report(self, timeout: float = 10.0) -> dict[str, list[list[str]]]:
        """Every conversation as the device holds it (see ``device_process.py``)."""
        assert self.process is not None and self.process.stdin is not None
        while not self._reports.empty():
            self._reports.get_nowait()
        self.process.stdin.write(b"report\n")
        await self.process.stdin.drain()
        return await asyncio.wait_for(self._reports.get(), timeout)

    async def kill(self) -> None:
        if self.alive:
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
        await self._ended()

    async def stop(self) -> None:
        if self.alive:
            assert self.process is not None
            self.process.terminate()
        await self._ended()

    async def _ended(self) -> None:
        if self.process is not None:
            await self.process.wait()
        if self._reader is not None:
            await self._reader
        self.process = self._reader = None


WAL_HEADER = 32
FRAME_HEADER = 24


def wal_frames(wal: Path) -> tuple[int, int]:
    """The page size and the number of whole frames in a write-ahead log."""
    data = wal.read_bytes()
    page = int.from_bytes(data[8:12], "big")
    return page, (len(data) - WAL_HEADER) // (FRAME_HEADER + page)


def cut_wal(wal: Path, frame: int) -> None:
    """Cut the log in the middle of ``frame`` (counting from 0): what a power loss leaves when
    the disk had written part of it. SQLite ignores the torn frame and everything after."""
    page, frames = wal_frames(wal)
    assert 0 <= frame < frames, (frame, frames)
    with wal.open("r+b") as log:
        log.truncate(WAL_HEADER + frame * (FRAME_HEADER + page) + FRAME_HEADER + page // 2)
