"""The hostile-relay demo's plumbing: the attacking relay process, its operator pipe, the cast.

The relay runs as its own process (``python -m relay --attack-layer``), exactly the production
relay with its attack layer switched on; the operator's commands go to its standard input and
its reports come back on its standard output (``shared.operator``). :class:`Cast` is Alice and
Bob (Bob with a recovery code, so his device list and his epochs have an older version to roll
back to and a newest one to hide), and every event their clients emit, so that each attack can
wait for what the clients show. ``client.hostile_attacks`` has the attacks; ``ariadne chat-demo
--hostile`` and the "Relay operator" window run them.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from client.core.client import AriadneClient
from client.core.events import Event, MessageStatus
from client.core.link import INTERACTIVE
from client.demo import DEMO_PASSWORD
from shared.operator import (
    Attack,
    OperatorCommand,
    OperatorReport,
    Stage,
    decode_report,
    encode,
)

# How long an attack waits for the clients' answer before calling it "not caught".
ANSWER_SECONDS = 20.0
# The demo's senders call a message "waiting" this soon, so withholding shows while one watches.
DEMO_OVERDUE_SECONDS = 3.0


class OperatorLink:
    """The write end of the relay's standard input and the read end of its standard output."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdin is not None and process.stdout is not None
        self._stdin = process.stdin
        self._stdout = process.stdout
        self.reports: list[OperatorReport] = []
        self.listeners: list[Callable[[OperatorReport], None]] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while line := await self._stdout.readline():
            report = decode_report(line)
            self.reports.append(report)
            for listener in list(self.listeners):
                listener(report)
            self._changed.set()

    async def command(self, attack: Attack, victim: str, **targets: str) -> OperatorReport:
        """Send one command; returns the relay's first answer to it (armed, done or refused)."""
        seen = len(self.reports)
        self._stdin.write(encode(OperatorCommand(attack=attack, victim=victim, **targets)))
        await self._stdin.drain()
        found = await self.report(attack, ("armed", "done", "refused"), since=seen)
        assert found is not None, f"the relay did not answer {attack}"
        return found

    async def report(
        self,
        attack: Attack,
        stages: tuple[Stage, ...] = ("done",),
        since: int = 0,
        timeout: float | None = None,
    ) -> OperatorReport | None:
        """The first report about ``attack`` in one of ``stages`` after the first ``since``."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ANSWER_SECONDS if timeout is None else timeout):
                while True:
                    for report in self.reports[since:]:
                        if report.attack == attack and report.stage in stages:
                            return report
                    self._changed.clear()
                    await self._changed.wait()
        return None

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@contextlib.asynccontextmanager
async def attacking_relay(data_dir: Path) -> AsyncIterator[tuple[str, OperatorLink]]:
    """``python -m relay --attack-layer`` on a free loopback port: its URL and operator pipe."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay",
        "--port",
        "0",
        "--data-dir",
        str(data_dir),
        "--log-level",
        "WARNING",
        "--attack-layer",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    operator: OperatorLink | None = None
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        if "listening on" not in line:
            raise RuntimeError("the relay did not start")
        operator = OperatorLink(process)
        yield line.rsplit(" ", 1)[1].strip(), operator
    finally:
        if operator is not None:
            await operator.close()
        if process.returncode is None:
            process.terminate()
            await process.wait()


@dataclass
class Cast:
    """Alice and Bob on the attacking relay, each client's events recorded."""

    root: Path
    url: str
    alice: AriadneClient
    bob: AriadneClient
    bob_code: str  # Bob's recovery code: a new device of his restores with it
    events: dict[str, list[Event]] = field(default_factory=dict)
    extra: list[AriadneClient] = field(default_factory=list)
    restored: AriadneClient | None = None  # a device of Bob's that restored with his code

    @classmethod
    async def create(cls, root: Path, url: str) -> Cast:
        alice = await AriadneClient.create_account(
            root / "alice", url, "alice", DEMO_PASSWORD, "Alice's desktop", backoff=INTERACTIVE
        )
        bob = await AriadneClient.create_account(
            root / "bob", url, "bob", DEMO_PASSWORD, "Bob's desktop", backoff=INTERACTIVE
        )
        code = await bob.setup_recovery()  # a second device list and epoch
        cast = cls(root, url, alice, bob, code)
        for client in (alice, bob):
            cast.record(client)
            client.delivery_watch.overdue_after = DEMO_OVERDUE_SECONDS
        await alice.directory.refresh("bob")  # Alice knows Bob's newest list
        await alice.send_text("bob", "Hi Bob, it's Alice.")
        await until(lambda: len(bob.messages("alice")) == 1)
        await bob.send_text("alice", "Hi Alice!")
        await until(lambda: len(alice.messages("bob")) == 2)
        await cast.quiet()
        return cast

    def record(self, client: AriadneClient) -> list[Event]:
        seen = self.events.setdefault(client.username + "/" + client.device_id, [])
        client.add_listener(seen.append)
        return seen

    def seen(self, client: AriadneClient) -> list[Event]:
        return self.events[client.username + "/" + client.device_id]

    async def quiet(self) -> None:
        """Until every message between them has its receipt: nothing else in flight."""

        def delivered() -> bool:
            return not any(
                m.status is MessageStatus.SENT
                for m in [*self.alice.messages("bob"), *self.bob.messages("alice")]
            )

        await until(delivered)

    async def new_device(self, name: str) -> AriadneClient:
        """A new device of Bob's, logged in with his password: pending until approved."""
        client = await AriadneClient.add_device(
            self.root / name.lower().replace(" ", "-").replace("'", ""),
            self.url,
            "bob",
            DEMO_PASSWORD,
            name,
            backoff=INTERACTIVE,
        )
        self.extra.append(client)
        self.record(client)
        return client

    async def close(self) -> None:
        for client in (self.alice, self.bob, *self.extra):
            await client.close()


async def until(condition: Callable[[], object], timeout: float | None = None) -> bool:
    """Wait until ``condition()`` holds; False if it did not within ``timeout`` (by default
    ``ANSWER_SECONDS``)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(ANSWER_SECONDS if timeout is None else timeout):
            while not condition():
                await asyncio.sleep(0.02)
            return True
    return False
