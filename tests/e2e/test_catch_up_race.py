"""An envelope committed while its device catches up from the store reaches the device once.

A connection serves its device from the store until it has caught up (the backlog read), then
from what each commit pushes to it (``relay.connection``). Around a commit the two overlap: the
same envelope could be both found by the backlog read and pushed by its commit. It never reaches
the device twice, for these reasons, which these tests hold to:

- the backlog read sees committed rows only, so a read before the commit does not find the
  envelope, and the push comes after the commit (SQLite, caught up before the commit);
- on SQLite the group commit calls back its fan-outs, which push, in the same step of the event
  loop as the commit: a read after the commit comes after the push, which a connection still
  catching up ignores (the read finds the envelope; SQLite, catching up right after the commit);
- on PostgreSQL the commit completes on another thread and its fan-outs are called back a turn
  or more later, so a read can come between: there the call-back pushes an envelope only to a
  connection that was handed everything its queue held before it and not the envelope itself,
  else the connection reads again from its cursor (PostgreSQL, caught up before the
  call-back).

Each test holds back one fan-out's commit, or its call-back (a controlled scheduler: the same
code, run later), lets Bob's device catch up at the chosen moment, releases it, and checks that
the device gets that envelope and the next one once each, in queue order. Alice and Bob are raw
websockets logged in with real accounts' keys, both on the relay's first node."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from relay.handlers import delivery
from relay.store import RelayStore
from tests.conftest import Accounts, RunningRelay, eventually
from tests.e2e.flood import fan_out_to_bob, read_some
from tests.e2e.test_limits import logged_in


class Held:
    """Calls of the functions wrapped by ``hold`` are held back while ``armed``, and made, in
    the order they came, by ``release``."""

    def __init__(self) -> None:
        self.armed = False
        self.calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def hold(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def held(*args: Any) -> Any:
            if not self.armed:
                return function(*args)
            self.calls.append((function, args))
            return None

        return held

    def release(self) -> None:
        self.armed = False
        calls, self.calls = self.calls, []
        for function, args in calls:
            function(*args)


async def _deliveries_to_bob(
    accounts: Accounts,
    relay: RunningRelay,
    monkeypatch: pytest.MonkeyPatch,
    held: Held,
    release_on_first_read: bool,
) -> list[tuple[int, int]]:
    """Alice sends message 1 to Bob's device while ``held`` holds its commit (or call-back);
    Bob's device logs in and catches up, the held call is released (before Bob's first backlog
    read, or once it has caught up), and Alice sends message 2. Returns (seq, message number)
    of what Bob's device got from Alice, up to message 2."""
    alice, bob = await accounts.create("alice"), await accounts.create("bob")
    await accounts.stop(alice)
    await accounts.stop(bob)
    assert relay.relay is not None
    store = relay.relay.store
    queued = store.queued
    reads: list[int] = []  # sizes of Bob's backlog reads

    def read_backlog(device_id: str, after_seq: int, limit: int) -> Any:
        if device_id == bob.device_id and release_on_first_read and not reads:
            held.release()  # the held commit runs right before this read, in its step
        page = queued(device_id, after_seq, limit)
        if device_id == bob.device_id:
            reads.append(len(page))
        return page

    monkeypatch.setattr(store, "queued", read_backlog)
    async with logged_in(relay.url, alice) as sender:
        held.armed = True
        await sender.send(fan_out_to_bob(1, bob.device_id, size=16))
        await eventually(
            lambda: bool(held.calls) and store.queue_length(bob.device_id) == 1,
            message="message 1 queued, its commit held",
        )
        async with logged_in(relay.url, bob) as reader:
            # Caught up: the writer read a short page and serves it from then on from pushes.
            await eventually(lambda: bool(reads), message="Bob's device caught up")
            held.release()
            await sender.send(fan_out_to_bob(2, bob.device_id, size=16))
            got: list[tuple[int, int]] = []
            while not any(number == 2 for _, number in got):
                await read_some(reader, alice.device_id, got, 1)
    return got


def _once_in_order(got: list[tuple[int, int]]) -> None:
    assert [number for _, number in got] == [1, 2], got
    assert got[0][0] < got[1][0], got


@pytest.mark.parametrize("moment", ["caught_up_before_the_commit", "catching_up_after_it"])
async def test_an_envelope_committed_while_its_device_catches_up_comes_once(
    accounts: Accounts, relay: RunningRelay, monkeypatch: pytest.MonkeyPatch, moment: str
):
    held = Held()
    monkeypatch.setattr(RelayStore, "_commit_now", held.hold(RelayStore._commit_now))
    got = await _deliveries_to_bob(
        accounts, relay, monkeypatch, held, release_on_first_read=moment == "catching_up_after_it"
    )
    _once_in_order(got)


@pytest.mark.backends("postgres")
async def test_an_envelope_committed_before_its_call_back_comes_once(
    accounts: Accounts, relay: RunningRelay, monkeypatch: pytest.MonkeyPatch
):
    """PostgreSQL: Bob's device catches up after message 1 is committed and before the commit
    calls back its fan-out, which finds Bob's device connected to its node."""
    held = Held()
    monkeypatch.setattr(delivery, "_accepted", held.hold(delivery._accepted))
    got = await _deliveries_to_bob(accounts, relay, monkeypatch, held, release_on_first_read=False)
    _once_in_order(got)
