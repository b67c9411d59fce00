"""The relay's websocket server: authentication, key directory, fan-out checks and delivery.

Each connection is a small state machine: ``CHALLENGED`` (the relay sent a nonce and waits for a
signed login) → ``AUTHENTICATED`` (frames are served) → ``CLOSED``. Every frame is decoded
strictly by ``shared.wire``; a bad frame gets an ``Error`` frame, and a connection that keeps
sending bad frames, or floods, is closed. No handler lets one connection's bad input reach the
store or another connection.

Delivery: envelopes are appended to each recipient device's durable queue and the sender gets
``Accepted`` only after the group commit. A connected device gets envelopes pushed in queue order
by its own writer task; it acknowledges after persisting, and the relay deletes on ack.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import os
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path

import msgspec
import websockets
from websockets.asyncio.server import Server, ServerConnection, serve

from relay.ratelimit import KeyedBuckets, LoginThrottle, TokenBucket
from relay.store import DeviceRow, EpochRow, QueuedEnvelope, RelayStore
from relay.vault import Vault
from shared import wire
from shared.auth import NONCE_LENGTH, verify_login
from shared.device_list import DeviceList, check_successor, list_hash, open_device_list
from shared.epoch import EpochHead, head_hash, open_head
from shared.errors import ProtocolError, WireError
from shared.identity import device_id_for
from shared.password import check_password, hash_password
from shared.recovery_code import check_membership_proof

log = logging.getLogger("ariadne.relay")

PRE_KEYS_LOW = 20
PAIRING_OFFER_SECONDS = 600  # a pairing offer not answered within this expires
SEEN_PER_CONVERSATION = 500
SEEN_CONVERSATIONS = 10_000
SEEN_EXCERPT = 48


@dataclass(frozen=True)
class Limits:
    """Every limit of the relay, in one place. Frames per connection: beyond the rate they get
    ``rate_limited``; a connection that keeps at it, or sends ``max_bad_frames`` undecodable
    frames, is closed. Everything else is kept per account (or per source address) for the whole
    relay process, so reconnecting refills nothing; each refusal names its limit in an error
    code (PROTOCOL.md §3, "Limits")."""

    frames_per_second: float = 2000.0
    frame_burst: float = 4000.0
    # Bundles asked for, per requesting account (beyond: ``rate_limited``).
    bundle_fetches_per_second: float = 2.0
    bundle_fetch_burst: float = 60.0
    # One-time pre-keys handed out per target account; beyond, bundles go without one (the
    # session still starts, on the signed pre-key alone) so nobody can drain them.
    pre_keys_per_second: float = 1.0
    pre_key_burst: float = 40.0
    vault_calls_per_second: float = 1.0
    vault_call_burst: float = 20.0
    max_bad_frames: int = 20
    max_rate_violations: int = 200
    login_timeout: float = 10.0
    delivery_page: int = 256
    live_backlog: int = 1024
    # Failed password logins: free ones per account / per source address, then a wait that
    # doubles from the first to the longest (``login_throttled``, with the seconds to wait).
    free_login_failures_per_account: int = 5
    free_login_failures_per_source: int = 20
    login_wait_first: float = 1.0
    login_wait_longest: float = 300.0
    concurrent_password_hashes: int = 2  # Argon2id runs at most this many at once
    # Quotas (``mailbox_full``, ``queue_full``, ``too_many_pending``, ``busy``).
    mailbox_bytes: int = 256 * 1024 * 1024  # per account
    queue_bytes: int = 64 * 1024 * 1024  # per device
    pending_devices: int = 5  # per account
    pending_device_seconds: int = 7 * 24 * 3600  # an unapproved device is forgotten after this
    unauthenticated_connections: int = 256  # connections that have not logged in yet
    unauthenticated_per_source: int = 16  # of those, from one address


@functools.cache
def _unknown_user_hash() -> str:
    """A hash to verify against when the username is unknown (made once, never matches)."""
    return hash_password(os.urandom(16).hex())


class ConnectionState(enum.Enum):
    CHALLENGED = "challenged"
    AUTHENTICATED = "authenticated"
    CLOSED = "closed"


class _Reject(Exception):
    """Answer the current request with an error frame."""

    def __init__(self, code: str, detail: str = "", retry_after: float | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail
        self.retry_after = retry_after


class Relay:
    """The relay's state shared by all connections."""

    def __init__(
        self, store: RelayStore, limits: Limits | None = None, vault: Vault | None = None
    ) -> None:
        self.store = store
        self.vault = vault
        self.limits = limits or Limits()
        self.connections: dict[str, DeviceConnection] = {}
        limits = self.limits
        # Shared by all connections: a new connection starts with what the account has left.
        self.bundle_fetches = KeyedBuckets(
            limits.bundle_fetches_per_second, limits.bundle_fetch_burst
        )
        self.pre_keys_handed_out = KeyedBuckets(limits.pre_keys_per_second, limits.pre_key_burst)
        self.vault_calls = KeyedBuckets(limits.vault_calls_per_second, limits.vault_call_burst)
        self.account_logins = LoginThrottle(
            limits.free_login_failures_per_account,
            limits.login_wait_first,
            limits.login_wait_longest,
        )
        self.source_logins = LoginThrottle(
            limits.free_login_failures_per_source,
            limits.login_wait_first,
            limits.login_wait_longest,
        )
        self.password_hashing = asyncio.Semaphore(limits.concurrent_password_hashes)
        self.unauthenticated = 0
        self.unauthenticated_from: Counter[str] = Counter()
        self._members: dict[str, frozenset[str]] = {}
        self._last_ts = 0
        # What the relay saw of each conversation (keyed by the users of a fan-out), for the
        # "server view". In memory and bounded: the relay keeps no longer metadata log than this.
        self.seen: dict[frozenset[str], deque[wire.SeenEnvelope]] = {}
        # Who started pairing with each pending device's current offer (its commitment): the
        # only device its reveal may go to. In memory: a restart only means asking again.
        self.pairing_started: dict[str, tuple[bytes, str]] = {}

    def record_seen(
        self, users: frozenset[str], queued: list[QueuedEnvelope], recipient_of: dict[str, str]
    ) -> None:
        log_ = self.seen.pop(users, None) or deque(maxlen=SEEN_PER_CONVERSATION)
        self.seen[users] = log_  # most recently active last
        while len(self.seen) > SEEN_CONVERSATIONS:
            del self.seen[next(iter(self.seen))]
        for envelope in queued:
            log_.append(
                wire.SeenEnvelope(
                    seq=envelope.seq,
                    server_ts=envelope.server_ts,
                    sender_user=envelope.sender_user,
                    sender_device=envelope.sender_device,
                    recipient_user=recipient_of[envelope.device_id],
                    device_id=envelope.device_id,
                    size=len(envelope.payload),
                    excerpt=envelope.payload[-SEEN_EXCERPT:],
                    queued=True,
                )
            )

    def close(self) -> None:
        self.store.close()
        if self.vault is not None:
            self.vault.close()

    def members(self, username: str) -> frozenset[str]:
        """The devices on the user's current signed list (cached: read on every fan-out)."""
        members = self._members.get(username)
        if members is None:
            members = self._members[username] = self.store.list_members(username)
        return members

    def forget_members(self, username: str | None = None) -> None:
        if username is None:
            self._members.clear()
        else:
            self._members.pop(username, None)

    def next_timestamp(self) -> int:
        """Microseconds; strictly increasing, so every fan-out has its own place in the order."""
        self._last_ts = max(self._last_ts + 1, time.time_ns() // 1000)
        return self._last_ts

    async def handle(self, websocket: ServerConnection) -> None:
        await DeviceConnection(self, websocket).run()

    def notify_user(self, username: str, notice: wire.Notice) -> None:
        for device_id in self.members(username) | {
            d.device_id for d in self.store.devices_of(username)
        }:
            connection = self.connections.get(device_id)
            if connection is not None:
                connection.push_frame(notice)


class DeviceConnection:
    def __init__(self, relay: Relay, websocket: ServerConnection) -> None:
        self.relay = relay
        self.store = relay.store
        self.limits = relay.limits
        self.ws = websocket
        self.state = ConnectionState.CHALLENGED
        self.username = ""
        self.device_id = ""
        self._frames = TokenBucket(self.limits.frames_per_second, self.limits.frame_burst)
        self._bad_frames = 0
        self._rate_violations = 0
        # Delivery: a cursor over the queue, a backlog of live pushes, and a wake-up event.
        self._cursor = 0
        self._draining = True
        self._live: deque[QueuedEnvelope] = deque()
        self._outgoing: deque[wire.Frame] = deque()  # answers and notices, sent by the writer
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        peer = self.ws.remote_address
        try:
            source = self._source()
            if (
                self.relay.unauthenticated >= self.limits.unauthenticated_connections
                or self.relay.unauthenticated_from[source] >= self.limits.unauthenticated_per_source
            ):
                await self._send(wire.Error(rid=None, code="busy", detail="try again shortly"))
                await self._close(1013, "too many connections logging in")
                return
            self.relay.unauthenticated += 1
            self.relay.unauthenticated_from[source] += 1
            try:
                nonce = os.urandom(NONCE_LENGTH)
                await self.ws.send(wire.encode(wire.Challenge(nonce=nonce)))
                if not await self._login(nonce):
                    return
            finally:
                self.relay.unauthenticated -= 1
                self.relay.unauthenticated_from[source] -= 1
                if not self.relay.unauthenticated_from[source]:
                    del self.relay.unauthenticated_from[source]
            log.info("device %s of %s connected from %s", self.device_id, self.username, peer)
            writer = asyncio.create_task(self._deliver())
            try:
                async for data in self.ws:
                    await self._serve(data)
            finally:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
        except websockets.ConnectionClosed:
            pass
        finally:
            self.state = ConnectionState.CLOSED
            if self.relay.connections.get(self.device_id) is self:
                del self.relay.connections[self.device_id]
            for task in list(self._tasks):
                task.cancel()
            if self.device_id:
                log.info("device %s disconnected", self.device_id)

    async def _send(self, frame: wire.Frame) -> None:
        await self.ws.send(wire.encode(frame))

    async def _close(self, code: int, reason: str) -> None:
        log.warning("closing connection of %s: %s", self.device_id or "unauthenticated", reason)
        await self.ws.close(code, reason)

    # ------------------------------------------------------------------ login

    async def _login(self, nonce: bytes) -> bool:
        try:
            data = await asyncio.wait_for(self.ws.recv(), self.limits.login_timeout)
        except TimeoutError:
            await self._close(1008, "login timeout")
            return False
        try:
            frame = wire.decode_client_frame(data)
        except WireError as exc:
            await self._send(wire.Error(rid=None, code="bad_frame", detail=str(exc)[:200]))
            await self._close(1008, "bad login frame")
            return False
        rid = getattr(frame, "rid", None)
        try:
            match frame:
                case wire.CreateAccount():
                    await self._create_account(frame, nonce)
                case wire.AddDevice():
                    await self._add_device(frame, nonce)
                case wire.Resume():
                    self._resume(frame, nonce)
                case _:
                    raise _Reject("login_required", "log in first")
        except _Reject as rejection:
            log.info("login refused: %s", rejection.code)
            await self._send(
                wire.Error(
                    rid=rid,
                    code=rejection.code,
                    detail=rejection.detail,
                    retry_after=rejection.retry_after,
                )
            )
            await self._close(1008, "login refused")
            return False
        previous = self.relay.connections.get(self.device_id)
        self.relay.connections[self.device_id] = self
        if previous is not None:
            task = asyncio.create_task(previous._close(4000, "replaced by a newer connection"))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self.state = ConnectionState.AUTHENTICATED
        self.store.touch(self.device_id, int(time.time()))
        await self._send(
            wire.Welcome(
                rid=rid,
                device_id=self.device_id,
                one_time_pre_keys_left=self.store.pre_key_count(self.device_id),
            )
        )
        return True

    @staticmethod
    def _registered_device(frame: wire.CreateAccount | wire.AddDevice, nonce: bytes) -> DeviceRow:
        """Check that the new device's id matches its key and that it signed the challenge."""
        device = frame.device
        if device_id_for(device.sign_public) != device.device_id:
            raise _Reject("bad_device_id", "device id does not match its signing key")
        if not verify_login(
            device.sign_public, frame.signature, nonce, frame.username, device.device_id
        ):
            raise _Reject("bad_signature")
        return DeviceRow(
            device.device_id,
            frame.username,
            device.name,
            device.sign_public,
            device.storage_key,
            int(time.time()),
            None,
        )

    async def _create_account(self, frame: wire.CreateAccount, nonce: bytes) -> None:
        row = self._registered_device(frame, nonce)
        async with self.relay.password_hashing:
            password_hash = await asyncio.to_thread(hash_password, frame.password)
        if self.store.device(row.device_id) is not None:  # checked after the await: no race
            raise _Reject("device_taken", "this device is registered to another account")
        if not self.store.create_account(frame.username, password_hash, frame.amk_public, row):
            raise _Reject("username_taken", "that username is taken")
        await self.store.durable()
        self.username, self.device_id = frame.username, row.device_id

    async def _add_device(self, frame: wire.AddDevice, nonce: bytes) -> None:
        row = self._registered_device(frame, nonce)
        source = self._source()
        wait = max(
            self.relay.account_logins.wait(frame.username), self.relay.source_logins.wait(source)
        )
        if wait > 0:
            raise _Reject(
                "login_throttled",
                "too many wrong passwords",
                retry_after=min(wait, wire.MAX_RETRY_AFTER),
            )
        stored = self.store.password_hash(frame.username)
        # One Argon2id verification whether or not the user exists: timing tells nothing.
        async with self.relay.password_hashing:
            ok = await asyncio.to_thread(
                check_password, frame.password, stored or _unknown_user_hash()
            )
        # (The password may have changed while this one was checked: a login made with the old
        # one must not outlive the change.)
        if stored is None or not ok or self.store.password_hash(frame.username) != stored:
            self.relay.account_logins.failed(frame.username)
            self.relay.source_logins.failed(source)
            raise _Reject("bad_credentials", "wrong username or password")
        self.relay.account_logins.succeeded(frame.username)
        existing = self.store.device(row.device_id)
        if existing is None:
            self._expire_pending(frame.username)
            members = self.relay.members(frame.username)
            pending = [
                d for d in self.store.devices_of(frame.username) if d.device_id not in members
            ]
            if len(pending) >= self.limits.pending_devices:
                raise _Reject(
                    "too_many_pending",
                    f"{len(pending)} devices already wait for approval: approve or reject them",
                )
            self.store.add_device(row)
            await self.store.durable()
        elif existing.username != frame.username:
            raise _Reject("device_taken", "this device is registered to another account")
        self.username, self.device_id = frame.username, row.device_id
        log.info("pending device %s registered for %s", self.device_id, self.username)
        self.relay.notify_user(
            self.username, wire.Notice(kind="device_list_changed", username=self.username)
        )

    def _source(self) -> str:
        address = self.ws.remote_address
        return str(address[0]) if isinstance(address, tuple) and address else "unknown"

    def _expire_pending(self, username: str) -> None:
        """Forget the account's devices that stayed unapproved too long (credentials, keys and
        queue) and hang up on them, as a rejection would. Run where it matters: before a new
        device is counted against the quota, and before the approver sees the list."""
        cutoff = int(time.time()) - self.limits.pending_device_seconds
        members = self.relay.members(username)
        for device in self.store.devices_of(username):
            if device.device_id not in members and device.registered_at < cutoff:
                self.store.forget_device(device.device_id)
                log.info("pending device %s expired", device.device_id)
                connection = self.relay.connections.get(device.device_id)
                if connection is not None:
                    # Held by that connection: this one may end first (a refused login).
                    task = asyncio.create_task(connection._close(4003, "pending device expired"))
                    connection._tasks.add(task)
                    task.add_done_callback(connection._tasks.discard)

    def _resume(self, frame: wire.Resume, nonce: bytes) -> None:
        device = self.store.device(frame.device_id)
        if device is None or device.username != frame.username:
            raise _Reject("unknown_device", "this device is not registered (or was removed)")
        if not verify_login(
            device.sign_public, frame.signature, nonce, frame.username, frame.device_id
        ):
            raise _Reject("bad_signature")
        self.username, self.device_id = frame.username, frame.device_id

    # ------------------------------------------------------------------ serving frames

    async def _serve(self, data: bytes | str) -> None:
        try:
            frame = wire.decode_client_frame(data)
        except WireError as exc:
            self._bad_frames += 1
            log.debug("bad frame from %s: %s", self.device_id, exc)
            await self._send(wire.Error(rid=None, code="bad_frame", detail=str(exc)[:200]))
            if self._bad_frames >= self.limits.max_bad_frames:
                await self._close(1008, "too many bad frames")
            return
        rid = getattr(frame, "rid", None)
        if not self._frames.take():
            self._rate_violations += 1
            if self._rate_violations > self.limits.max_rate_violations:
                await self._close(1008, "rate limit")
            else:
                await self._send(wire.Error(rid=rid, code="rate_limited"))
            return
        try:
            reply = await self._dispatch(frame)
        except _Reject as rejection:
            reply = wire.Error(
                rid=rid,
                code=rejection.code,
                detail=rejection.detail,
                retry_after=rejection.retry_after,
            )
        except Exception:
            # A bug must cost one request, not the connection or the relay. The traceback names
            # the frame type only; payloads never reach the log.
            log.exception("internal error serving %s", type(frame).__name__)
            reply = wire.Error(rid=rid, code="internal_error")
        if reply is not None:
            await self._send(reply)

    async def _dispatch(self, frame: wire.ClientFrame) -> wire.Frame | None:
        match frame:
            case wire.Send():
                return self._fan_out(frame)
            case wire.Ack():
                self.store.acknowledge(self.device_id, frame.seqs)
                return None
            case wire.FetchDeviceList():
                return self._fetch_device_list(frame)
            case wire.FetchBundles():
                return self._fetch_bundles(frame)
            case wire.PublishKeys():
                if self.store.identity_key_owners(frame.identity_key) - {self.device_id}:
                    raise _Reject("identity_key_taken", "another device uses this identity key")
                self.store.set_keys(
                    self.device_id,
                    frame.identity_key,
                    frame.signed_pre_key,
                    frame.signed_pre_key_sig,
                    frame.one_time_pre_keys,
                )
                await self.store.durable()
                return wire.Ok(rid=frame.rid)
            case wire.PublishDeviceList():
                await self._publish_device_list(frame)
                return wire.Ok(rid=frame.rid)
            case wire.ListDevices():
                return self._list_devices(frame)
            case wire.OfferPairing():
                return await self._offer_pairing(frame)
            case wire.PairingSend():
                return self._pairing_send(frame)
            case wire.RejectDevice():
                return await self._reject_device(frame)
            case wire.Inspect():
                return self._inspect(frame)
            case wire.ChangePassword():
                return await self._change_password(frame)
            case wire.PublishEpoch():
                await self._publish_epoch(frame)
                return wire.Ok(rid=frame.rid)
            case wire.FetchEpochs():
                return self._fetch_epochs(frame)
            case wire.SaveMessages():
                return await self._save_messages(frame)
            case wire.FetchMailbox():
                return self._fetch_mailbox(frame)
            case wire.ListMailboxThreads():
                return self._mailbox_threads(frame)
            case wire.FetchVaultKey():
                if self.relay.vault is None:
                    raise _Reject("no_vault", "this relay runs without a PIN vault")
                return wire.VaultKey(rid=frame.rid, public=self.relay.vault.public_key)
            case wire.VaultCall():
                return self._vault_call(frame)
            case wire.CreateAccount() | wire.AddDevice() | wire.Resume():
                raise _Reject("already_logged_in")
        raise _Reject("unsupported")  # pragma: no cover - the union is exhaustive

    def _fan_out(self, frame: wire.Send) -> wire.Frame | None:
        members = self.relay.members(self.username)
        if self.device_id not in members:
            raise _Reject("pending_device", "this device is not on its account's device list")
        earlier = self.store.fan_out_time(self.device_id, frame.send_id)
        if earlier is not None:
            # Stored before, but the answer was lost: answer again, queue nothing twice.
            self.store.durable().add_done_callback(
                lambda done: self._accepted(done, frame.rid, earlier, [])
            )
            return None
        mismatches = []
        rows = []
        seen_users: set[str] = set()
        for recipient in frame.recipients:
            if recipient.username in seen_users:
                raise _Reject("bad_request", "a user appears twice")
            seen_users.add(recipient.username)
            expected = self.relay.members(recipient.username)
            if recipient.username == self.username:
                expected = expected - {self.device_id}
            got = [e.device_id for e in recipient.envelopes]
            if len(set(got)) != len(got):
                raise _Reject("bad_request", "a device appears twice")
            if not expected and recipient.username != self.username:
                raise _Reject("unknown_user", f"no user {recipient.username}")
            if set(got) != expected:
                mismatches.append(
                    wire.DeviceMismatch(
                        username=recipient.username,
                        missing=sorted(expected - set(got)),
                        extra=sorted(set(got) - expected),
                    )
                )
            rows.extend((e.device_id, recipient.username, e.payload) for e in recipient.envelopes)
        if mismatches:
            return wire.Mismatch(rid=frame.rid, users=mismatches)
        for device_id, username, payload in rows:
            if not self.store.queue_has_room(device_id, len(payload), self.limits.queue_bytes):
                # All or nothing: the sender keeps the message and tries again later.
                raise _Reject("queue_full", f"{username} {device_id}")
        server_ts = self.relay.next_timestamp()
        self.store.record_fan_out(self.device_id, frame.send_id, server_ts)
        queued = self.store.enqueue(
            [
                (device_id, self.username, self.device_id, server_ts, payload)
                for device_id, _, payload in rows
            ]
        )
        log.debug("fan-out from %s: %d envelopes", self.device_id, len(queued))
        self.relay.record_seen(
            frozenset(seen_users | {self.username}),
            queued,
            {device_id: username for device_id, username, _ in rows},
        )
        self.store.durable().add_done_callback(
            lambda done: self._accepted(done, frame.rid, server_ts, queued)
        )
        return None

    def _accepted(
        self, done: asyncio.Future[None], rid: int, server_ts: int, queued: list[QueuedEnvelope]
    ) -> None:
        """Once the fan-out is committed: push it to connected recipients, answer the sender."""
        if done.cancelled() or done.exception() is not None:
            self.push_frame(wire.Error(rid=rid, code="internal_error", detail="not stored"))
            return
        for envelope in queued:
            connection = self.relay.connections.get(envelope.device_id)
            if connection is not None:
                connection.push(envelope)
        self.push_frame(wire.Accepted(rid=rid, server_ts=server_ts))

    def _fetch_bundles(self, frame: wire.FetchBundles) -> wire.Frame:
        if not self.relay.bundle_fetches.take(self.username, len(frame.device_ids)):
            raise _Reject("rate_limited", "too many pre-key requests")
        members = self.relay.members(frame.username)
        bundles = []
        for device_id in dict.fromkeys(frame.device_ids):
            if device_id not in members:
                continue  # pending or unknown devices get no sessions
            with_pre_key = self.relay.pre_keys_handed_out.take(frame.username)
            row = self.store.take_bundle(device_id, with_pre_key)
            if row is None:
                continue
            bundles.append(
                wire.PreKeyBundle(
                    device_id=device_id,
                    identity_key=row.identity_key,
                    signed_pre_key=row.signed_pre_key,
                    signed_pre_key_sig=row.signed_pre_key_sig,
                    one_time_pre_key=row.one_time_pre_key,
                )
            )
            left = self.store.pre_key_count(device_id)
            owner = self.relay.connections.get(device_id)
            if left < PRE_KEYS_LOW and owner is not None:
                owner.push_frame(wire.Notice(kind="prekeys_low", count=left))
        return wire.Bundles(rid=frame.rid, bundles=bundles)

    async def _publish_device_list(self, frame: wire.PublishDeviceList) -> None:
        amk_public = self.store.amk_public(self.username)
        try:
            new = open_device_list(frame.signed_list, self.username, amk_public)
            stored = self.store.device_list(self.username)
            current = open_device_list(stored[1], self.username, amk_public) if stored else None
            if not check_successor(current, stored[1] if stored else None, new, frame.signed_list):
                return
        except ProtocolError as exc:
            raise _Reject("bad_device_list", str(exc)) from None
        if current is not None and new.version != current.version + 1:
            raise _Reject("bad_device_list", "versions must go up one at a time")
        # check_successor checked that the author is on the current list (or is its recovery
        # code) and signed; a device may publish only what it made itself, so a pending device
        # holding the account key (a removed one) cannot put itself back. A device restoring
        # with the code publishes a list its code made: the code's signature is the proof.
        restoring = (
            current is not None
            and current.recovery_key is not None
            and new.author == device_id_for(current.recovery_key)
        )
        if new.author != self.device_id and not restoring:
            raise _Reject("not_a_member", "a device list is published by its author")
        for entry in new.devices:
            registered = self.store.device(entry.device_id)
            if registered is None or registered.username != self.username:
                raise _Reject("bad_device_list", f"device {entry.device_id} is not registered")
            if self.store.identity_key_owners(entry.identity_key) - {entry.device_id}:
                raise _Reject("bad_device_list", "an identity key on the list is another device's")
        epoch = self._checked_epoch(frame.epoch, new, frame.signed_list)
        removed = (current.device_ids if current else frozenset()) - new.device_ids
        self.store.set_device_list(self.username, new.version, frame.signed_list, new.device_ids)
        self.store.add_epoch(
            self.username, epoch, ((g.member_id, g.sealed) for g in frame.epoch.grants)
        )
        self.relay.forget_members(self.username)
        for device_id in removed:
            self.store.forget_device(device_id)
        await self.store.durable()
        for device_id in removed:
            connection = self.relay.connections.get(device_id)
            if connection is not None:  # in the background: a close handshake can take seconds
                task = asyncio.create_task(connection._close(4001, "device removed"))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        log.info("device list of %s is now version %d", self.username, new.version)
        # One notice: a device that refreshes its own list also refreshes the epochs.
        self.relay.notify_user(
            self.username, wire.Notice(kind="device_list_changed", username=self.username)
        )

    async def _publish_epoch(self, frame: wire.PublishEpoch) -> None:
        if self.device_id not in self.relay.members(self.username):
            raise _Reject("not_a_member", "only a device on the device list opens epochs")
        stored = self.store.device_list(self.username)
        if stored is None:
            raise _Reject("bad_epoch", "the account has no device list yet")
        listed = open_device_list(stored[1], self.username, None)
        epoch = self._checked_epoch(frame.epoch, listed, stored[1])
        self.store.add_epoch(
            self.username, epoch, ((g.member_id, g.sealed) for g in frame.epoch.grants)
        )
        await self.store.durable()
        self.relay.notify_user(self.username, wire.Notice(kind="epoch_changed"))

    def _checked_epoch(
        self, upload: wire.EpochUpload, device_list: DeviceList, signed_list: bytes
    ) -> EpochRow:
        """The relay checks what it can of a new epoch so that no client has to deal with a
        malformed one: AMK signature, next in the chain, opened for this device list, its device
        members exactly the listed devices (with their storage keys), one grant per member."""
        amk_public = self.store.amk_public(self.username) or b""
        try:
            head = open_head(upload.signed_head, self.username, amk_public)
        except ProtocolError as exc:
            raise _Reject("bad_epoch", str(exc)) from None
        latest = self.store.latest_epoch(self.username)
        if head.seq != (latest.seq + 1 if latest else 1):
            raise _Reject("bad_epoch", "epochs must go up one at a time")
        if latest is not None and head.prev_head_hash != head_hash(latest.signed_head):
            raise _Reject("bad_epoch", "epoch does not chain to the previous one")
        if head.device_list_hash != list_hash(signed_list):
            raise _Reject("bad_epoch", "epoch is not for this device list")
        if not _members_match(head, device_list):
            raise _Reject("bad_epoch", "epoch members are not the listed devices")
        granted = [g.member_id for g in upload.grants]
        if len(set(granted)) != len(granted) or set(granted) != {m.member_id for m in head.members}:
            raise _Reject("bad_epoch", "one grant per member, no more")
        if (head.seq == 1) != (upload.prev_root_box == b""):
            raise _Reject("bad_epoch", "previous-root box missing or unexpected")
        return EpochRow(head.seq, upload.signed_head, upload.prev_root_box, upload.account_box)

    def _fetch_epochs(self, frame: wire.FetchEpochs) -> wire.Frame:
        """Epoch records go to any device of the account (they are signed, and sealed); a grant
        only to its member: the device itself, or a device proving it holds a virtual device's
        key (the recovery code) with a signature the signed head lets the relay check."""
        member_id = frame.member_id or self.device_id
        amk_public = self.store.amk_public(self.username) or b""
        epochs = self.store.epochs_after(self.username, frame.since)
        allowed = member_id == self.device_id
        if not allowed and frame.proof is not None and epochs:
            head = open_head(epochs[-1].signed_head, self.username, amk_public)
            member = head.member(member_id)
            allowed = (
                member is not None
                and member.virtual
                and member.sign_public is not None
                and check_membership_proof(
                    member.sign_public, frame.proof, self.username, self.device_id
                )
            )
        if not allowed:
            raise _Reject("not_a_member", "grants go only to their member")
        grants = self.store.grants_for(self.username, member_id, frame.since)
        return wire.Epochs(
            rid=frame.rid,
            epochs=[
                wire.EpochData(
                    signed_head=e.signed_head,
                    prev_root_box=e.prev_root_box,
                    account_box=e.account_box,
                    grant=grants.get(e.seq),
                )
                for e in epochs
            ],
        )

    def _fetch_device_list(self, frame: wire.FetchDeviceList) -> wire.Frame:
        stored = self.store.device_list(frame.username)
        between = []
        if stored is not None and frame.since is not None:
            between = self.store.device_lists_between(
                frame.username, frame.since, stored[0], wire.MAX_LISTS_BETWEEN
            )
        return wire.DeviceListReply(
            rid=frame.rid, signed_list=stored[1] if stored else None, between=between
        )

    async def _change_password(self, frame: wire.ChangePassword) -> wire.Frame:
        """A member sets a new password. Logins made with the old one end: pending devices
        (registered with it) are forgotten and disconnected; members log in by their keys."""
        self._require_member()
        password_hash = await asyncio.to_thread(hash_password, frame.password)
        self.store.set_password_hash(self.username, password_hash)
        members = self.relay.members(self.username)
        pending = [d.device_id for d in self.store.devices_of(self.username)]
        pending = [d for d in pending if d not in members]
        for device_id in pending:
            self.store.forget_device(device_id)
        await self.store.durable()
        for device_id in pending:
            connection = self.relay.connections.get(device_id)
            if connection is not None:
                task = asyncio.create_task(connection._close(4003, "password changed"))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        log.info(
            "password of %s changed; %d pending devices forgotten", self.username, len(pending)
        )
        return wire.Ok(rid=frame.rid)

    def _require_member(self) -> None:
        if self.device_id not in self.relay.members(self.username):
            raise _Reject("pending_device", "this device is not on its account's device list")

    async def _save_messages(self, frame: wire.SaveMessages) -> wire.Frame:
        self._require_member()
        latest = self.store.latest_epoch(self.username)
        if latest is None or any(item.epoch != latest.seq for item in frame.items):
            # Saving under an older epoch would let a removed device read it: refuse.
            raise _Reject("stale_epoch", f"save under epoch {latest.seq if latest else 0}")
        adding = sum(len(item.sealed) for item in frame.items)
        if self.store.mailbox_bytes(self.username) + adding > self.limits.mailbox_bytes:
            raise _Reject("mailbox_full", f"the mailbox holds {self.limits.mailbox_bytes} bytes")
        self.store.save_to_mailbox(
            self.username,
            ((i.thread_id, i.ts, i.message_id, i.epoch, i.sealed) for i in frame.items),
        )
        await self.store.durable()
        return wire.Ok(rid=frame.rid)

    def _fetch_mailbox(self, frame: wire.FetchMailbox) -> wire.Frame:
        self._require_member()
        if (frame.before_ts is None) != (frame.before_id is None):
            raise _Reject("bad_request", "before_ts and before_id go together")
        before = (frame.before_ts, frame.before_id) if frame.before_ts is not None else None
        rows = self.store.mailbox_page(self.username, frame.thread_id, before, frame.limit)
        return wire.MailboxPage(
            rid=frame.rid,
            items=[
                wire.MailboxItem(thread_id=r[0], message_id=r[1], ts=r[2], epoch=r[3], sealed=r[4])
                for r in rows
            ],
        )

    def _mailbox_threads(self, frame: wire.ListMailboxThreads) -> wire.Frame:
        self._require_member()
        threads = []
        for thread_id, count in self.store.mailbox_threads(self.username):
            r = self.store.mailbox_page(self.username, thread_id, None, 1)[0]
            newest = wire.MailboxItem(
                thread_id=r[0], message_id=r[1], ts=r[2], epoch=r[3], sealed=r[4]
            )
            threads.append(wire.MailboxThread(thread_id=thread_id, count=count, newest=newest))
        return wire.MailboxThreads(rid=frame.rid, threads=threads)

    def _vault_call(self, frame: wire.VaultCall) -> wire.Frame:
        if self.relay.vault is None:
            raise _Reject("no_vault", "this relay runs without a PIN vault")
        if not self.relay.vault_calls.take(self.username):
            raise _Reject("rate_limited", "too many vault requests")
        # The vault cannot see who is a member; the relay tells it (a pending device may ask
        # for the code with the PIN, only a member may back up), and the vault also checks the
        # account key's signature on a backup.
        answer = self.relay.vault.handle(
            self.username,
            frame.sealed,
            member=self.device_id in self.relay.members(self.username),
            amk_public=self.store.amk_public(self.username),
        )
        if answer is None:
            raise _Reject("vault_refused", "the vault could not open the request")
        return wire.VaultReply(rid=frame.rid, sealed=answer)

    def _inspect(self, frame: wire.Inspect) -> wire.Frame:
        """Only a conversation the asking user is part of, and only for a device on the user's
        list (a pending device could be anyone who knows the password); "queued" is read from
        the store."""
        self._require_member()
        seen = self.relay.seen.get(frozenset({self.username, frame.peer}), ())
        still_queued = self.store.still_queued([e.seq for e in seen])
        return wire.Inspection(
            rid=frame.rid,
            envelopes=[msgspec.structs.replace(e, queued=e.seq in still_queued) for e in seen],
        )

    def _list_devices(self, frame: wire.ListDevices) -> wire.Frame:
        self._expire_pending(self.username)
        members = self.relay.members(self.username)
        fresh_after = int(time.time()) - PAIRING_OFFER_SECONDS
        return wire.Devices(
            rid=frame.rid,
            devices=[
                wire.RegisteredDevice(
                    registration=wire.DeviceRegistration(
                        device_id=d.device_id,
                        name=d.name,
                        sign_public=d.sign_public,
                        storage_key=d.storage_key,
                    ),
                    identity_key=d.identity_key,
                    registered_at=d.registered_at,
                    last_seen=d.last_seen,
                    member=d.device_id in members,
                    pairing_commitment=(
                        d.pairing_commitment
                        if d.device_id not in members and (d.pairing_at or 0) >= fresh_after
                        else None
                    ),
                    pairing_at=d.pairing_at if d.device_id not in members else None,
                )
                for d in self.store.devices_of(self.username)
            ],
        )

    async def _offer_pairing(self, frame: wire.OfferPairing) -> wire.Frame:
        if self.device_id in self.relay.members(self.username):
            raise _Reject("already_member", "this device is already on the device list")
        self.store.offer_pairing(self.device_id, frame.commitment, int(time.time()))
        self.relay.pairing_started.pop(self.device_id, None)
        await self.store.durable()
        self.relay.notify_user(
            self.username, wire.Notice(kind="pairing_offer", username=self.username)
        )
        return wire.Ok(rid=frame.rid)

    def _pairing_send(self, frame: wire.PairingSend) -> wire.Frame:
        """Forward an opaque pairing message between two devices of the same account: from a
        member only to a pending device with a fresh offer (the first member to do so starts the
        exchange for that offer), and from a pending device only to the member that started the
        exchange for its current offer."""
        target = self.store.device(frame.to_device)
        if target is None or target.username != self.username:
            raise _Reject("unknown_device", "no such device on this account")
        members = self.relay.members(self.username)
        if self.device_id in members:
            fresh_after = int(time.time()) - PAIRING_OFFER_SECONDS
            if frame.to_device in members or (target.pairing_at or 0) < fresh_after:
                raise _Reject("no_offer", "that device has no open request to be approved")
            offer = (target.pairing_commitment, self.device_id)
            started = self.relay.pairing_started.get(frame.to_device, offer)
            if started != offer:
                raise _Reject("pairing_busy", "another device is already approving that one")
        else:
            own = self.store.device(self.device_id)
            started = self.relay.pairing_started.get(self.device_id)
            if own is None or started != (own.pairing_commitment, frame.to_device):
                raise _Reject("not_started", "no approval of this device was started by that one")
        connection = self.relay.connections.get(frame.to_device)
        if connection is None:
            raise _Reject("not_connected", "that device is not online")
        if self.device_id in members:
            self.relay.pairing_started[frame.to_device] = offer
        connection.push_frame(wire.PairingPush(from_device=self.device_id, payload=frame.payload))
        return wire.Ok(rid=frame.rid)

    async def _reject_device(self, frame: wire.RejectDevice) -> wire.Frame:
        self._require_member()
        target = self.store.device(frame.device_id)
        if target is None or target.username != self.username:
            raise _Reject("unknown_device", "no such device on this account")
        if frame.device_id in self.relay.members(self.username):
            raise _Reject("is_member", "remove a listed device with a new device list")
        self.store.forget_device(frame.device_id)
        await self.store.durable()
        connection = self.relay.connections.get(frame.device_id)
        if connection is not None:
            task = asyncio.create_task(connection._close(4002, "device rejected"))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        log.info("pending device %s rejected", frame.device_id)
        return wire.Ok(rid=frame.rid)

    # ------------------------------------------------------------------ delivery

    def push(self, envelope: QueuedEnvelope) -> None:
        if self._draining:
            return  # the writer reads the queue from the store and will find it there
        if len(self._live) >= self.limits.live_backlog:
            self._live.clear()
            self._draining = True  # a slow reader: go back to paging from the store
        else:
            self._live.append(envelope)
        self._wake.set()

    def push_frame(self, frame: wire.Frame) -> None:
        self._outgoing.append(frame)
        self._wake.set()

    async def _deliver(self) -> None:
        """The connection's writer: answers and notices first, then queued envelopes in order,
        paged from the store until caught up, then live, as many per frame as are ready."""
        while True:
            while self._outgoing:
                await self._send(self._outgoing.popleft())
            if self._draining:
                page = self.store.queued(self.device_id, self._cursor, self.limits.delivery_page)
                if len(page) < self.limits.delivery_page:
                    # Caught up. Nothing can be committed between this read and this line (one
                    # thread), so from here on every new envelope arrives through push().
                    self._draining = False
                    self._live.clear()
            else:
                page = list(self._live)
                self._live.clear()
            fresh = [e for e in page if e.seq > self._cursor]
            for start in range(0, len(fresh), wire.MAX_DELIVER):
                chunk = fresh[start : start + wire.MAX_DELIVER]
                self._cursor = chunk[-1].seq
                await self._send(
                    wire.Deliver(
                        envelopes=[
                            wire.Delivered(
                                seq=e.seq,
                                sender_user=e.sender_user,
                                sender_device=e.sender_device,
                                server_ts=e.server_ts,
                                payload=e.payload,
                            )
                            for e in chunk
                        ]
                    )
                )
            if not page and not self._outgoing:
                self._wake.clear()
                await self._wake.wait()


def _members_match(head: EpochHead, device_list: DeviceList) -> bool:
    devices = {m.member_id: m for m in head.members if not m.virtual}
    if set(devices) != device_list.device_ids:
        return False
    for entry in device_list.devices:
        if devices[entry.device_id].storage_key != entry.storage_key:
            return False
    return all(
        m.sign_public is not None
        and m.endorsement is not None
        and device_id_for(m.sign_public) == m.member_id
        for m in head.virtual_members
    )


async def start_relay(
    host: str, port: int, data_dir: Path, limits: Limits | None = None, *, vault: bool = True
) -> tuple[Relay, Server]:
    """Open the store in ``data_dir`` and start serving; returns when the socket listens.
    The PIN vault is started beside it (in ``data_dir/vault``, with its own key and storage)
    unless ``vault`` is False."""
    data_dir.mkdir(parents=True, exist_ok=True)
    store = RelayStore(data_dir / "relay.sqlite3")
    store.forget_old_fan_outs(time.time_ns() // 1000)
    relay = Relay(store, limits, Vault(data_dir / "vault") if vault else None)
    server = await serve(
        relay.handle,
        host,
        port,
        max_size=wire.MAX_FRAME_BYTES,
        compression=None,
        max_queue=64,
    )
    return relay, server
