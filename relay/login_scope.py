"""The statements a login runs once its device is known, as a store shared by several nodes
runs them: beside fan-outs and other logins instead of one at a time across all nodes.

A resume reads the device's row and, for a device that is not registered, its account's newest
signed lists; the connection it opens then claims the device's newest connection (one row of
``connections``), stamps its last-seen time (one row of ``devices``) and counts its one-time
pre-keys. Every row it reads is written only by transactions that take ``GROUP_LOCK``
exclusively (devices added or removed, keys published, lists changed), and every row it writes
is one PostgreSQL locks itself until the commit (a second login of the same device, on any node,
waits for the first). So these statements take ``GROUP_LOCK`` shared, with no device lock
(``PgRelayStore.fan_out_scope()`` naming none): a device removal on another node still waits for
them, or they for it, while logins no longer wait for each other or for fan-outs. Creating an
account or adding a device checks and writes rows other logins read (usernames, pending devices,
failed guesses): those stay exclusive.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager

from relay.storage import RelayStorage
from relay.store_pg import PgRelayStore


def login_scope(store: RelayStorage) -> AbstractContextManager[None]:
    if isinstance(store, PgRelayStore):
        return store.fan_out_scope()
    return contextlib.nullcontext()
