"""The relay's PostgreSQL store (asyncpg), shared by several relay nodes: the storage interface
of ``relay.storage`` with the SQLite store's guarantees, across processes.

How a node talks to PostgreSQL: asyncpg runs on its own event loop in a thread of the node
(``relay.store_pg_link``), and the store's methods, which the handlers call synchronously as they
call the SQLite store's, wait for their statement there; a fan-out's writes are held and sent
with the transaction's next statement or its commit, all fan-outs' in one statement
(``relay.store_pg_batch``), a turn's acknowledgements in one statement, and other writes in a
fan-out's scope are sent without waiting (they run in order on the transaction's connection, a
read waits for the writes before it, and one that fails fails the rest of its transaction and its
commit).
Writes go into the node's open transaction and are committed in groups, as with SQLite:
:meth:`PgRelayStore.durable` completes after the flush of the transaction it was asked in, which
is committed without blocking the node once per event-loop turn. The commit hands the
transaction over first: the next statements open the next one on another connection of the
node's pool while the last one flushes. That adds no interleaving the locks below do not already
allow between nodes: two transactions of a node are open at once only if their locks allow it.
Which locks a transaction takes, and why the nodes never race nor deadlock:
``relay.store_pg_locks``.

A lost database connection raises :class:`~relay.storage.StoreUnavailable` and calls
``on_unavailable`` (the relay closes its connections: clients retry); the next call reconnects.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import asyncpg

from relay.storage import StoreUnavailable
from relay.store_pg_batch import WriteBatch
from relay.store_pg_blobs import PgBlobs
from relay.store_pg_controls import PgControls
from relay.store_pg_delivery import PgDelivery
from relay.store_pg_fan_out import FanOutReads, PgFanOut
from relay.store_pg_link import CONNECTIONS, LOST, PgLink, Pool, Transaction, lost
from relay.store_pg_locks import (
    DEVICE_LOCKS,
    EXCLUSIVE,
    GROUP_LOCK,
    device_lock,
    scope_keys,
    take,
)
from relay.store_pg_schema import MIGRATIONS, migrate

__all__ = ["DEVICE_LOCKS", "GROUP_LOCK", "PgLink", "PgRelayStore", "device_lock"]

STATEMENT_TIMEOUT = 30.0

# Stores of this process with a transaction open. Several nodes in one process (the tests run two)
# share one event loop: a node waiting for GROUP_LOCK would block the loop that must run the
# commit of the node holding it. Before it waits, it commits the others: their handlers finished
# their synchronous part (only one runs at a time on the loop), so this is only an earlier commit.
_OPEN: set[PgRelayStore] = set()


class PgRelayStore(PgDelivery, PgFanOut, PgControls, PgBlobs):
    shared_between_nodes = True

    def __init__(self, dsn: str, connections: int = CONNECTIONS) -> None:
        self.link = PgLink(dsn)
        self.on_unavailable: Callable[[], None] | None = None
        # On the link's loop: the node's open transaction, and the pool it and the transactions
        # still committing take their connections from (primitives bound at first use).
        self._lock = asyncio.Lock()  # statements and the start of a commit, in submission order
        self._current: Transaction | None = None
        self._held = WriteBatch()  # the open transaction's fan-out writes not yet sent
        self._pool = Pool(self.link, connections)
        self._reader: asyncpg.Connection | None = None  # committed rows, outside GROUP_LOCK
        self._reader_lock = asyncio.Lock()
        # On the node's loop.
        self._scope: frozenset[int] | None = None  # the open scope's locks
        self._reads: FanOutReads | None = None  # what the scope's fan-out read first
        self._batch = WriteBatch()  # fan-out writes made since the last statement was sent
        self._acks: list[tuple[str, int]] = []  # acknowledged envelopes, deleted once per turn
        self._preceding: dict[int, int] = {}  # envelope seq → its queue's seq before it
        # The locks the open transaction takes, and those of the ones committing (``flushed``).
        self._taking: str | frozenset[int] | None = None
        self._flushes: list[tuple[str | frozenset[int], concurrent.futures.Future[None]]] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._commit_scheduled = False
        self._closed = False
        try:
            self.link.call(migrate(self.link, MIGRATIONS))
        except BaseException:
            self.link.stop()
            raise

    # ------------------------------------------------------------------ the link's side

    async def _in_group(
        self,
        method: str,
        sql: str,
        args: tuple[Any, ...],
        devices: frozenset[int] | None,
        batch: WriteBatch,
        apart: Callable[[WriteBatch], Any] | None,
    ) -> Any:
        async with self._lock:
            txn = self._current
            if txn is not None and txn.failed:
                # A statement before this one failed and the transaction was rolled back: the
                # rest of its handlers' statements must not commit without it (a write the
                # node did not wait for fails only here).
                raise StoreUnavailable("an earlier statement of this transaction failed")
            try:
                if txn is None:
                    txn = self._current = await self._pool.begin()
                self._held.extend(batch)
                if not apart:
                    await self._held.send(txn, STATEMENT_TIMEOUT)  # this statement may read it
                if not await take(txn, devices, wait=False):
                    # Holding locks, it must not wait: what it has so far is complete handlers
                    # (a handler's statements are all under the locks of its first), so commit
                    # it, with their held writes; its waiters are settled by the commit that
                    # follows. Then wait, holding nothing.
                    await self._held.send(txn, STATEMENT_TIMEOUT)
                    await txn.conn.execute("COMMIT", timeout=STATEMENT_TIMEOUT)
                    await txn.conn.execute("BEGIN")
                    txn.holds = None
                    await take(txn, devices, wait=True)
                result = await getattr(txn.conn, method)(sql, *args, timeout=STATEMENT_TIMEOUT)
                return (result, apart(self._held)) if apart else result
            except Exception as exc:
                self._held.take()  # rolled back with the rest
                if txn is not None:
                    await _abandon(txn, exc)
                if lost(exc):
                    raise StoreUnavailable(str(exc)) from exc
                raise

    async def _read_committed(self, sql: str, args: tuple[Any, ...]) -> list[asyncpg.Record]:
        async with self._reader_lock:
            try:
                if self._reader is None or self._reader.is_closed():
                    self._reader = await self.link.connect()
                rows: list[asyncpg.Record] = await self._reader.fetch(
                    sql, *args, timeout=STATEMENT_TIMEOUT
                )
                return rows
            except Exception as exc:
                if not lost(exc):
                    raise
                reader, self._reader = self._reader, None
                if reader is not None:
                    reader.terminate()
                raise StoreUnavailable(str(exc)) from exc

    async def _commit(self, batch: WriteBatch) -> None:
        """Commit the open transaction, with the fan-out writes held for it (``batch``: the
        node's last ones). It leaves the node's hands first: the statements sent after this
        call open the next transaction on another connection of the pool while this one waits
        for its flush (see ``_finish``)."""
        async with self._lock:
            txn, self._current = self._current, None
            self._held.extend(batch)
            held = self._held.take()
            if txn is not None and not txn.failed:
                try:
                    await held.send(txn, STATEMENT_TIMEOUT)
                except Exception as exc:
                    await _abandon(txn, exc)  # and _finish says so
        if txn is not None:
            await self._finish(txn)

    async def _finish(self, txn: Transaction) -> None:
        broken = True
        try:
            if txn.failed:
                broken = txn.conn.is_closed()
                raise StoreUnavailable("a statement failed: the transaction was rolled back")
            try:
                await txn.conn.execute("COMMIT", timeout=STATEMENT_TIMEOUT)
            except Exception as exc:
                raise StoreUnavailable(str(exc)) from exc
            broken = False
        finally:
            self._pool.give_back(txn.conn, broken)

    # ------------------------------------------------------------------ the node's side

    def _run(
        self,
        method: str,
        sql: str,
        *args: Any,
        wait: bool = True,
        apart: Callable[[WriteBatch], Any] | None = None,
    ) -> Any:
        """Run a statement in the node's transaction and return its result; with ``wait``
        False, send it and go on (it runs after the statements sent before it, before those
        sent after; if it fails, they and the commit fail). The fan-out writes held so far are
        sent before it; with ``apart`` (a fan-out's first read) they are not, and it returns
        its result with what ``apart`` says of them, which it could not see
        (``relay.store_pg_batch``)."""
        if self._acks and not apart:
            self._delete_acknowledged()  # this statement may read the queue
        self._opened()
        devices = self._scoped_devices()
        batch = self._batch.take()
        statement = self._in_group(method, sql, args, devices, batch, apart)
        try:
            if not wait:
                self.link.submit(statement)
                return None
            return self.link.call(statement)
        except StoreUnavailable:
            self._lost()
            raise
        finally:
            self._schedule_commit()  # every transaction ends this turn: it holds GROUP_LOCK

    def _opened(self) -> None:
        """Before a statement or a held write of the node's transaction: commit the other
        stores' (see ``_OPEN``), and count the scope's locks as the transaction's."""
        if self._closed:
            raise StoreUnavailable("the store is closed")
        for other in [store for store in _OPEN if store is not self]:
            other._commit_now(wait=True)
        _OPEN.add(self)
        devices = self._scoped_devices()
        if devices is None or isinstance(self._taking, str):
            self._taking = EXCLUSIVE
        else:
            self._taking = (self._taking or frozenset()) | devices

    def holding(self) -> bool:
        """Whether writes may be held (``hold``): in a fan-out scope, after its first read."""
        return self._scope is not None and self._reads is not None

    def hold(
        self,
        records: Sequence[tuple[str, bytes, int]] = (),
        envelopes: Sequence[tuple[int, str, str, str, int, bytes]] = (),
        seen: Sequence[tuple[str, int, bytes]] = (),
    ) -> None:
        """Write these rows of the open fan-out scope with the transaction's next statement or
        its commit, whichever comes first (``relay.store_pg_batch``)."""
        assert self._scope is not None and self.holding(), "only after a fan-out's first read"
        self._opened()
        self._batch.add(self._scope, records, envelopes, seen)
        self._schedule_commit()

    @contextlib.contextmanager
    def fan_out_scope(
        self, queues: Iterable[str] = (), senders: Iterable[str] = ()
    ) -> Iterator[None]:
        """The statements run inside write only the queues of ``queues``, the ``send_id``
        records of ``senders``, and the "seen" log of their conversation, and read device
        lists: they take GROUP_LOCK shared and a lock per queue and per sender, beside other
        scopes on other devices. The scope must hold all of one handler's statements (its locks
        are taken at the first), and its body must not yield to the event loop: no other task
        runs while it is open, so every statement made meanwhile is the handler's."""
        outer, outer_reads = self._scope, self._reads
        self._scope, self._reads = scope_keys(queues, senders), None
        try:
            yield
            self.write_fan_out_record()
        finally:
            self._scope, self._reads = outer, outer_reads

    async def flushed(self, queues: Iterable[str] = (), senders: Iterable[str] = ()) -> None:
        """Wait, without holding up the node, until none of this node's transactions that are
        committing holds a lock of the scope of ``queues`` and ``senders``. Its statements
        would wait for that flush anyway (a device's next fan-out, into the same queue, while
        its last one commits), and a statement's wait stops the node's loop."""
        keys = scope_keys(queues, senders)
        while True:
            self._flushes = [(held, done) for held, done in self._flushes if not done.done()]
            holding = [
                asyncio.wrap_future(done)
                for held, done in self._flushes
                if isinstance(held, str) or held & keys
            ]
            if not holding:
                return
            await asyncio.wait(holding)

    def _scoped_devices(self) -> frozenset[int] | None:
        return self._scope  # None: any other statement, GROUP_LOCK exclusively

    def _lost(self) -> None:
        if self.on_unavailable is not None:
            self.on_unavailable()

    def ping(self) -> bool:
        """Whether the database answers (a statement in a transaction of its own)."""
        try:
            self._run("fetchval", "SELECT 1")
        except (StoreUnavailable, asyncpg.PostgresError):
            return False
        return True

    def durable(self) -> asyncio.Future[None]:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._schedule_commit()
        return waiter

    def when_durable(self, callback: Callable[[BaseException | None], None]) -> None:
        """Call ``callback`` once everything written so far is committed, with the commit's
        error if it failed (``durable``, for a caller that wants no future)."""
        self.durable().add_done_callback(
            lambda done: callback(
                asyncio.CancelledError() if done.cancelled() else done.exception()
            )
        )

    def _schedule_commit(self) -> None:
        if self._commit_scheduled:
            return
        self._commit_scheduled = True
        try:
            asyncio.get_running_loop().call_soon(self._commit_now)
        except RuntimeError:  # no loop (opening, closing): commit now
            self._commit_now(wait=True)

    def _commit_now(self, wait: bool = False) -> None:
        if self._acks and not wait:
            # Not when another store's statement commits this one (wait): that statement may be
            # one of a handler's, which this one's locks must not wait for. The turn's
            # scheduled commit, still to come, deletes them.
            with contextlib.suppress(StoreUnavailable):
                self._delete_acknowledged()
        self._commit_scheduled = False
        _OPEN.discard(self)
        waiters, self._waiters = self._waiters, []
        done = self.link.submit(self._commit(self._batch.take()))
        if self._taking is not None:
            self._flushes.append((self._taking, done))
            self._taking = None
        if wait:
            concurrent.futures.wait([done])
            _settle(waiters, done)
            return
        loop = asyncio.get_running_loop()
        done.add_done_callback(lambda d: loop.call_soon_threadsafe(self._committed, waiters, d))

    def _committed(
        self, waiters: list[asyncio.Future[None]], done: concurrent.futures.Future[None]
    ) -> None:
        if isinstance(done.exception(), StoreUnavailable) and not waiters:
            return  # nobody waited: the next call finds the connection down
        if done.exception() is not None and self.on_unavailable is not None:
            self.on_unavailable()
        _settle(waiters, done)

    def close(self) -> None:
        if self._closed:
            return
        with contextlib.suppress(StoreUnavailable):
            if self._acks:
                self._delete_acknowledged()
            self.link.call(self._commit(self._batch.take()))
        self._closed = True
        self.link.call(self._close_connections())
        self.link.stop()

    async def _close_connections(self) -> None:
        await self._pool.close()  # after every commit still in flight
        if self._reader is not None and not self._reader.is_closed():
            await self._reader.close()

    # ------------------------------------------------------------------ typed reads

    def _rows(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = self._run("fetch", sql, *args)
        return rows

    def _committed_rows(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Rows as committed, read without taking GROUP_LOCK. Safe where only committed rows
        matter: a queue's commits come in seq order, so what is read is a prefix of it."""
        if self._closed:
            raise StoreUnavailable("the store is closed")
        try:
            return self.link.call(self._read_committed(sql, args))
        except StoreUnavailable:
            self._lost()
            raise

    def _row(self, sql: str, *args: Any) -> asyncpg.Record | None:
        row: asyncpg.Record | None = self._run("fetchrow", sql, *args)
        return row

    def _value(self, sql: str, *args: Any) -> Any:
        return self._run("fetchval", sql, *args)

    def _execute(self, sql: str, *args: Any) -> None:
        # A fan-out's or an acknowledgement's writes are not waited for: the node goes on
        # while they run in order on its connection, and their handler is answered only after
        # the commit, which fails if one of them did. Elsewhere a write is waited for, so that
        # a statement the database refuses answers the request that sent it.
        self._run("execute", sql, *args, wait=self._scoped_devices() is None)


async def _abandon(txn: Transaction, exc: BaseException) -> None:
    """A statement of ``txn`` failed: roll it back (or drop its lost connection); it takes no
    more statements and its commit fails."""
    txn.failed = True
    if lost(exc):
        txn.conn.terminate()
    else:
        with contextlib.suppress(*LOST):
            await txn.conn.execute("ROLLBACK")


def _settle(waiters: list[asyncio.Future[None]], done: concurrent.futures.Future[None]) -> None:
    exc = done.exception()
    for waiter in waiters:
        if waiter.done():
            continue
        if exc is not None:
            waiter.set_exception(exc)
        else:
            waiter.set_result(None)
