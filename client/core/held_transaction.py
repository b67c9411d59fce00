"""One transaction held across many writes and awaits of one task, for bulk work.

A restore's backfill stores up to hundreds of thousands of messages. Each commit writes every
page the transaction changed, and a page of random message ids changes most pages of the id
index, so a commit costs about the size of that index, however few rows it adds: committing
every few thousand rows made the commits most of a restore's cost. Holding one transaction
across many short writes (each small, so the window's event loop is never held long) amortises
them, on three conditions that keep everyone else's writes prompt:

- it is committed when another task waits to write or has joined its writes to it
  (:attr:`ProfileStore.wanted`), so live messages and what the user does wait one write at most;
- it is committed before the task waits on anything that may be slow (the relay), so it is
  never open while nothing is being written;
- it is committed every ``every`` rows, which bounds the work a crash loses (a restore just
  fetches it again: what is committed always includes the mailbox cursor that says where).
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import TypeVar

from client.core.storage import ProfileStore, Transaction

T = TypeVar("T")


class HeldTransaction:
    """``async with HeldTransaction(store, every) as held:`` then, per write, ``await
    held.begin()`` before it and ``await held.wrote(rows)`` after it; ``await held.commit()``
    before waiting on something slow. Leaving commits; an error rolls back what is not yet
    committed (a cancellation commits: it lands between whole writes)."""

    def __init__(self, store: ProfileStore, every: int) -> None:
        self._store = store
        self._every = every
        self._open: Transaction | None = None
        self._rows = 0

    async def begin(self) -> None:
        """Open the transaction, if it is not open (waits while another task's is)."""
        if self._open is None:
            transaction = self._store.transaction()
            await transaction.__aenter__()
            self._open, self._rows = transaction, 0

    async def wrote(self, rows: int) -> None:
        """A whole write of ``rows`` rows is done: commit if it is time or someone waits."""
        self._rows += rows
        if self._rows >= self._every or self._store.wanted:
            await self.commit()

    async def wait(self, pending: asyncio.Future[T], patience: float) -> T:
        """``await pending``, keeping the transaction open for ``patience`` seconds at most
        meanwhile (a next page usually arrives within a few milliseconds; a slow relay must
        not keep others' writes waiting)."""
        if self._open is not None and not pending.done():
            await asyncio.wait([pending], timeout=patience)
            if not pending.done():
                await self.commit()
        return await pending

    async def commit(self) -> None:
        transaction, self._open = self._open, None
        if transaction is not None:
            await transaction.__aexit__(None, None, None)

    async def __aenter__(self) -> HeldTransaction:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        transaction, self._open = self._open, None
        if transaction is None:
            return
        if kind is not None and issubclass(kind, asyncio.CancelledError):
            kind = error = trace = None
        await transaction.__aexit__(kind, error, trace)
