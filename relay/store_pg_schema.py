"""The relay's PostgreSQL schema, as versioned migration steps (see ``relay.migrations``).

Version 2 is the SQLite schema's tables in PostgreSQL types (the same version number: the same
tables), plus what the SQLite store keeps in one process's memory and several nodes must share:
the bytes queued per device (kept by a trigger, exact), the nodes each device is connected to,
token buckets and login failures, who started each pairing, and the bounded log of what the
relay saw of each conversation. Version 3 adds the vault's rows (the vault's key stays in a file
beside each node; see ``relay.vault_pg``). Version 4 adds what the SQLite store's step 3 does:
a mailbox item deleted leaves its thread's count and its account's bytes (controls), and the
attachment blobs, whose bytes are rows here (``blob_chunks``) where SQLite keeps one file per
blob: a blob uploaded through one node is fetched through another. Version 5 makes the bytes
queued per device an upper bound (see ``_V5``).

A node applies the steps its database lacks when it opens the store (:func:`migrate`), one node
at a time.
"""

from __future__ import annotations

from relay.migrations import Step, pending
from relay.store_pg_link import PgLink
from relay.store_pg_locks import MIGRATION_LOCK

_V2 = """
CREATE TABLE accounts (
    username text PRIMARY KEY,
    password_hash text NOT NULL,
    amk_public bytea NOT NULL,
    created_at bigint NOT NULL
);
CREATE TABLE devices (
    device_id text PRIMARY KEY,
    username text NOT NULL REFERENCES accounts(username),
    name text NOT NULL,
    sign_public bytea NOT NULL,
    storage_key bytea NOT NULL,
    registered_at bigint NOT NULL,
    last_seen bigint NOT NULL,
    identity_key bytea,
    signed_pre_key bytea,
    signed_pre_key_sig bytea,
    pairing_commitment bytea,
    pairing_at bigint
);
CREATE INDEX devices_by_user ON devices(username);
CREATE INDEX devices_by_identity_key ON devices(identity_key);
CREATE TABLE one_time_pre_keys (
    device_id text NOT NULL,
    pre_key bytea NOT NULL,
    PRIMARY KEY (device_id, pre_key)
);
CREATE TABLE device_lists (
    username text PRIMARY KEY,
    version bigint NOT NULL,
    signed_list bytea NOT NULL
);
CREATE TABLE list_members (
    username text NOT NULL,
    device_id text NOT NULL,
    PRIMARY KEY (username, device_id)
);
CREATE TABLE device_list_history (
    username text NOT NULL,
    version bigint NOT NULL,
    signed_list bytea NOT NULL,
    PRIMARY KEY (username, version)
);
CREATE TABLE queue (
    seq bigserial PRIMARY KEY,
    device_id text NOT NULL,
    sender_user text NOT NULL,
    sender_device text NOT NULL,
    server_ts bigint NOT NULL,
    payload bytea NOT NULL
);
CREATE INDEX queue_by_device ON queue(device_id, seq);
CREATE TABLE queue_bytes (
    device_id text PRIMARY KEY,
    bytes bigint NOT NULL
);
CREATE FUNCTION queue_bytes_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queue_bytes SELECT device_id, sum(length(payload)) FROM added GROUP BY device_id
        ON CONFLICT (device_id) DO UPDATE SET bytes = queue_bytes.bytes + excluded.bytes;
    RETURN NULL;
END $$;
CREATE TRIGGER queue_bytes_added AFTER INSERT ON queue
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION queue_bytes_added();
CREATE FUNCTION queue_bytes_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE queue_bytes SET bytes = queue_bytes.bytes - r.bytes
        FROM (SELECT device_id, sum(length(payload)) AS bytes FROM removed GROUP BY device_id) r
        WHERE queue_bytes.device_id = r.device_id;
    RETURN NULL;
END $$;
CREATE TRIGGER queue_bytes_removed AFTER DELETE ON queue
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION queue_bytes_removed();
CREATE TABLE fan_outs (
    device_id text NOT NULL,
    send_id bytea NOT NULL,
    server_ts bigint NOT NULL,
    PRIMARY KEY (device_id, send_id)
);
CREATE TABLE epochs (
    username text NOT NULL,
    seq bigint NOT NULL,
    signed_head bytea NOT NULL,
    prev_root_box bytea NOT NULL,
    account_box bytea NOT NULL,
    PRIMARY KEY (username, seq)
);
CREATE TABLE grants (
    username text NOT NULL,
    member_id text NOT NULL,
    seq bigint NOT NULL,
    sealed bytea NOT NULL,
    PRIMARY KEY (username, member_id, seq)
);
CREATE TABLE mailbox (
    username text NOT NULL,
    thread_id bytea NOT NULL,
    ts bigint NOT NULL,
    message_id bytea NOT NULL,
    epoch bigint NOT NULL,
    sealed bytea NOT NULL,
    PRIMARY KEY (username, thread_id, ts, message_id)
);
CREATE TABLE mailbox_counts (
    username text NOT NULL,
    thread_id bytea NOT NULL,
    count bigint NOT NULL,
    PRIMARY KEY (username, thread_id)
);
CREATE TABLE mailbox_bytes (
    username text PRIMARY KEY,
    bytes bigint NOT NULL
);
CREATE FUNCTION mailbox_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO mailbox_counts VALUES (new.username, new.thread_id, 1)
        ON CONFLICT (username, thread_id) DO UPDATE SET count = mailbox_counts.count + 1;
    INSERT INTO mailbox_bytes VALUES (new.username, length(new.sealed))
        ON CONFLICT (username) DO UPDATE SET bytes = mailbox_bytes.bytes + excluded.bytes;
    RETURN NULL;
END $$;
CREATE TRIGGER mailbox_added AFTER INSERT ON mailbox FOR EACH ROW EXECUTE FUNCTION mailbox_added();
-- Shared by the nodes: which connection of a device is the newest (the others are closed),
-- token buckets and login failures, pairings started, what the relay saw.
CREATE TABLE connections (
    device_id text PRIMARY KEY,
    node text NOT NULL,
    connection bigint NOT NULL
);
CREATE TABLE buckets (
    kind text NOT NULL,
    key text NOT NULL,
    tokens double precision NOT NULL,
    at double precision NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE TABLE login_failures (
    key text PRIMARY KEY,
    count integer NOT NULL,
    at double precision NOT NULL
);
CREATE TABLE pairings_started (
    device_id text PRIMARY KEY,
    commitment bytea,
    approver text NOT NULL
);
CREATE TABLE seen (
    users text NOT NULL,
    seq bigint NOT NULL,
    envelope bytea NOT NULL,
    PRIMARY KEY (users, seq)
);
"""

_V3 = """
CREATE TABLE vault_backups (
    username text PRIMARY KEY,
    verifier bytea,
    wrapped bytea,
    wrong_guesses integer NOT NULL DEFAULT 0,
    locked boolean NOT NULL DEFAULT false
);
"""

_V4 = """
CREATE FUNCTION mailbox_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE mailbox_counts SET count = mailbox_counts.count - r.items
        FROM (SELECT username, thread_id, count(*) AS items FROM removed
              GROUP BY username, thread_id) r
        WHERE mailbox_counts.username = r.username AND mailbox_counts.thread_id = r.thread_id;
    DELETE FROM mailbox_counts
        WHERE count <= 0 AND (username, thread_id) IN (SELECT username, thread_id FROM removed);
    UPDATE mailbox_bytes SET bytes = mailbox_bytes.bytes - r.bytes
        FROM (SELECT username, sum(length(sealed)) AS bytes FROM removed GROUP BY username) r
        WHERE mailbox_bytes.username = r.username;
    RETURN NULL;
END $$;
CREATE TRIGGER mailbox_removed AFTER DELETE ON mailbox
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION mailbox_removed();
CREATE TABLE blobs (
    blob_id bytea PRIMARY KEY,
    owner text NOT NULL,
    size bigint NOT NULL,
    received bigint NOT NULL,
    capability_hash bytea NOT NULL,
    created_at bigint NOT NULL
);
CREATE INDEX blobs_by_owner ON blobs(owner);
CREATE INDEX blobs_by_age ON blobs(created_at);
CREATE TABLE blob_refs (
    blob_id bytea NOT NULL,
    username text NOT NULL,
    PRIMARY KEY (blob_id, username)
);
-- A blob's bytes, one row per uploaded chunk (at most one frame, 256 KiB), keyed by where it
-- starts; read back by offset and length. Ciphertext does not compress: stored without trying.
CREATE TABLE blob_chunks (
    blob_id bytea NOT NULL,
    start bigint NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (blob_id, start)
);
ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
"""

# Version 5: an acknowledgement writes no counter, so that it needs no lock shared with the
# fan-outs into the same queue (``relay.store_pg``): ``queue_bytes`` becomes an upper bound, made
# exact by ``queue_has_room`` when it is over a quota.
_V5 = """
DROP TRIGGER queue_bytes_removed ON queue;
DROP FUNCTION queue_bytes_removed();
"""

MIGRATIONS = [Step(2, _V2), Step(3, _V3), Step(4, _V4), Step(5, _V5)]


async def migrate(link: PgLink, steps: list[Step]) -> None:
    """Apply the ``steps`` (``MIGRATIONS``) the database lacks, or raise
    :class:`~relay.migrations.SchemaTooNew`; the other nodes starting meanwhile wait for it."""
    conn = await link.connect()
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer)")
        version = await conn.fetchval("SELECT max(version) FROM schema_version") or 0
        for step in pending(steps, version):
            async with conn.transaction():
                await conn.execute(step.sql)
                await conn.execute("INSERT INTO schema_version VALUES ($1)", step.version)
    finally:
        await conn.close()
