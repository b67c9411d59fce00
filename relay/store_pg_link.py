"""A relay node's connections to PostgreSQL: the thread that runs asyncpg for the node
(:class:`PgLink`), and the pool its transactions take connections from (:class:`Pool`).

Why a pool: a transaction that commits waits for the flush of the database's log (milliseconds
on a disk). The node's next transaction opens on another connection meanwhile, so the node keeps
serving while up to ``CONNECTIONS - 1`` of its transactions commit (``relay.store_pg``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import asyncpg

__all__ = ["CONNECTIONS", "LOST", "PgLink", "Pool", "Transaction", "lost"]

T = TypeVar("T")

CONNECTIONS = 4  # per node: its open transaction and the ones still committing
CONNECT_TIMEOUT = 3.0

# Connection failures (as opposed to a statement the database refused).
LOST = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # the protocol's state after a connection cut mid-statement
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CannotConnectNowError,
    TimeoutError,
)


def lost(exc: BaseException) -> bool:
    """A failure of the connection or the server (not of the statement): the classes the
    server uses while it stops, starts or recovers (08: connection, 57: operator intervention)."""
    if isinstance(exc, LOST):
        return True
    state = getattr(exc, "sqlstate", None) or ""
    return isinstance(exc, asyncpg.PostgresError) and state.startswith(("08", "57"))


@dataclasses.dataclass(eq=False)
class Transaction:
    """A transaction of the node on one connection of its pool."""

    conn: asyncpg.Connection
    holds: str | frozenset[int] | None = None  # its locks (see EXCLUSIVE)
    failed: bool = False  # a statement failed and it was rolled back: it takes no more


class PgLink:
    """An event loop in its own thread that runs asyncpg for one node; ``call`` waits for a
    coroutine's result, ``submit`` does not."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="postgres", daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.dsn, timeout=CONNECT_TIMEOUT)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


class Pool:
    """At most ``size`` connections, each holding one transaction of the node at a time (open,
    or committing); on the link's loop."""

    def __init__(self, link: PgLink, size: int = CONNECTIONS) -> None:
        self._link, self._size = link, size
        self._idle: list[asyncpg.Connection] = []
        self._pooled: set[asyncpg.Connection] = set()
        self._slots = asyncio.Semaphore(size)  # bound to the link's loop at first use

    async def begin(self) -> Transaction:
        """A new transaction on a pooled connection; waits while every connection of the pool
        is still committing."""
        await self._slots.acquire()
        conn = None
        try:
            while self._idle and conn is None:
                conn = self._idle.pop()
                if conn.is_closed():
                    self._pooled.discard(conn)
                    conn = None
            if conn is None:
                conn = await self._link.connect()
                self._pooled.add(conn)
            await conn.execute("BEGIN")
        except BaseException:
            self.give_back(conn, broken=True)
            raise
        return Transaction(conn)

    def give_back(self, conn: asyncpg.Connection | None, broken: bool = False) -> None:
        if conn is not None and broken:
            self._pooled.discard(conn)
            conn.terminate()
        elif conn is not None:
            self._idle.append(conn)
        self._slots.release()

    async def close(self) -> None:
        for _ in range(self._size):  # every transaction still committing has finished
            await self._slots.acquire()
        for conn in self._pooled:
            if not conn.is_closed():
                await conn.close()
