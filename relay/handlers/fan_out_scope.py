"""The fan-out handler as a store shared by several nodes runs it: inside a scope naming the
queues it touches and the sender whose ``send_id`` it records, so
that PostgreSQL commits fan-outs between different devices in parallel instead of one at a time
(``relay.store_pg``), after reading in one round trip everything the handler checks
(``relay.store_pg_fan_out``). With the SQLite store (one process) it is the fan-out handler
unchanged."""

from __future__ import annotations

from relay.handlers import delivery
from relay.session import Session
from relay.store_pg import PgRelayStore
from shared import wire


async def send(session: Session, frame: wire.Send) -> wire.Frame | None:
    store = session.store
    if not isinstance(store, PgRelayStore):
        return await delivery.send(session, frame)
    queues = [e.device_id for recipient in frame.recipients for e in recipient.envelopes]
    users = [session.username, *(recipient.username for recipient in frame.recipients)]
    await store.flushed(queues, senders=[session.device_id])
    with store.fan_out_scope(queues, senders=[session.device_id]):
        store.read_fan_out(session.device_id, frame.send_id, users, queues)
        return await delivery.send(session, frame)
