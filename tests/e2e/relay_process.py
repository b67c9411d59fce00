"""Runs the relay (``python -m relay`` and its arguments) with the test-only fault hook.

With ``ARIADNE_FAULT`` set (for example ``before_commit=0.01,after_commit=0.01``) the process
SIGKILLs itself with that probability, seeded by ``ARIADNE_FAULT_SEED``: just before a group
commit (what it wrote since the last one is lost: nobody was answered for it) or right after a
fan-out's commit, before the sender hears ``Accepted`` (it sends again with the same
``send_id``). Unset, the relay runs exactly as ``python -m relay``.

``ARIADNE_LIMITS`` (JSON, fields of ``relay.limits.Limits``) starts it with those limits, as the
tests' in-process nodes get theirs. ``ARIADNE_SLOW_COMMIT`` (seconds) makes every PostgreSQL
commit wait up to that long first (a random share of it), as on a slow, uneven disk: a
transaction stays uncommitted (its rows numbered, not yet visible, its locks held) for longer and
for a varying time, while the node goes on in its next ones, which widens every race between
commits. ``ARIADNE_SIGNAL_IN_SWAP=1`` sends the relay each stop signal again at the moment it has
just removed its event loop's handler for it, before it ignores the signal (a second Ctrl+C
landing there), and says so on standard error.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import random
import signal
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[2]))

from relay import __main__ as relay_main
from relay import server
from relay.handlers import delivery
from relay.store import RelayStore
from relay.store_pg import PgRelayStore


def _hook() -> None:
    spec = os.environ.get("ARIADNE_FAULT", "")
    faults = {k: float(v) for k, v in (p.split("=") for p in spec.split(",") if p)}
    if not faults:
        return
    chance = random.Random(int(os.environ.get("ARIADNE_FAULT_SEED", "0")))

    def fault(point: str) -> None:
        if chance.random() < faults.get(point, 0.0):
            os.kill(os.getpid(), signal.SIGKILL)

    commit, accepted = RelayStore._commit_now, delivery._accepted

    def commit_or_die(store: RelayStore) -> None:
        fault("before_commit")
        commit(store)

    def accepted_or_die(*args):  # type: ignore[no-untyped-def]
        fault("after_commit")
        accepted(*args)

    RelayStore._commit_now = commit_or_die  # type: ignore[method-assign]
    delivery._accepted = accepted_or_die


def _limits() -> None:
    changed = json.loads(os.environ.get("ARIADNE_LIMITS", "{}"))
    if changed:
        server.Limits = functools.partial(server.Limits, **changed)  # type: ignore[misc]


def _slow_commit() -> None:
    delay = float(os.environ.get("ARIADNE_SLOW_COMMIT", "0"))
    if not delay:
        return
    finish = PgRelayStore._finish

    async def slow_commit(store: PgRelayStore, transaction: Any) -> None:
        await asyncio.sleep(random.uniform(0, delay))
        await finish(store, transaction)

    PgRelayStore._finish = slow_commit  # type: ignore[method-assign]


def _signal_in_swap() -> None:
    if os.environ.get("ARIADNE_SIGNAL_IN_SWAP") != "1":
        return
    remove = asyncio.SelectorEventLoop.remove_signal_handler

    def remove_then_signal(loop: asyncio.SelectorEventLoop, sig: int) -> bool:
        removed = remove(loop, sig)
        print(f"signalled in the swap: {signal.Signals(sig).name}", file=sys.stderr, flush=True)
        os.kill(os.getpid(), sig)  # delivered before kill returns, unless the relay blocks it
        return removed

    asyncio.SelectorEventLoop.remove_signal_handler = remove_then_signal  # type: ignore[method-assign]


if __name__ == "__main__":
    _hook()
    _signal_in_swap()
    _limits()
    _slow_commit()
    relay_main.main()
