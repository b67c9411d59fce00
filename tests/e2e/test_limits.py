"""Abuse by ordinary users: the relay's limits and quotas hold across connections, each answers
its own error code, and the client turns it into a state the user sees without losing anything.
Real relay (with small limits, so the tests stay fast), real clients; the abusers speak the wire
protocol directly."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
import websockets
from websockets.asyncio.client import ClientConnection, connect

import relay.login as relay_login
from client.core.client import AriadneClient, RegistrationError
from client.core.events import (
    ConnectionState,
    ConnectionStateChanged,
    MessageStatus,
    RelayLimitReached,
    SendDeferred,
)
from client.core.link import RelayError
from relay.handlers import HANDLERS
from relay.server import Limits
from relay.session import Reject
from shared import wire
from shared.auth import sign_login
from shared.identity import SigningKey, device_id_for
from tests.conftest import PASSWORD, Accounts, RunningRelay, eventually


@pytest.fixture
async def limited(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Accounts]:
    """A relay started with the test's ``Limits`` (``@pytest.mark.parametrize`` indirect), and
    accounts on it."""
    running = RunningRelay(tmp_path / "relay", request.param)
    await running.start()
    made = Accounts(running, tmp_path / "profiles")
    yield made
    await made.close()
    await running.stop()


def limits(**changed: object) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("limited", [Limits(**changed)], indirect=True, ids=["limits"])


@contextlib.asynccontextmanager
async def logged_in(url: str, client: AriadneClient) -> AsyncIterator[ClientConnection]:
    """A fresh connection logged in as ``client``'s device (its key signs the challenge). Stop
    the client first: the relay keeps one connection per device, so the client reconnecting
    would replace this one mid-request."""
    async with connect(url, compression=None) as ws:
        challenge = wire.decode_relay_frame(await ws.recv())
        assert isinstance(challenge, wire.Challenge)
        signature = sign_login(
            client.profile.sign_key, challenge.nonce, client.username, client.device_id
        )
        await ws.send(
            wire.encode(
                wire.Resume(
                    rid=0,
                    username=client.username,
                    device_id=client.device_id,
                    signature=signature,
                )
            )
        )
        assert isinstance(wire.decode_relay_frame(await ws.recv()), wire.Welcome)
        yield ws


async def ask(ws: ClientConnection, frame: wire.Frame) -> wire.Frame:
    """Send ``frame`` and return the answer carrying its rid (pushes are skipped)."""
    await ws.send(wire.encode(frame))
    while True:
        answer = wire.decode_relay_frame(await asyncio.wait_for(ws.recv(), 10))
        if getattr(answer, "rid", None) == frame.rid:  # type: ignore[attr-defined]
            return answer


async def add_device(
    url: str, username: str, password: str, source: str = "127.0.0.1"
) -> wire.Frame:
    """One password login from a new device key, on its own connection from ``source`` (any
    loopback address): the relay's answer."""
    key = SigningKey.generate()
    device = wire.DeviceRegistration(
        device_id=device_id_for(key.public),
        name="Guess",
        sign_public=key.public,
        storage_key=key.public,
    )
    async with connect(url, compression=None, local_addr=(source, 0)) as ws:
        challenge = wire.decode_relay_frame(await ws.recv())
        signature = sign_login(key, challenge.nonce, username, device.device_id)
        await ws.send(
            wire.encode(
                wire.AddDevice(
                    rid=1,
                    username=username,
                    password=password,
                    device=device,
                    signature=signature,
                )
            )
        )
        return wire.decode_relay_frame(await asyncio.wait_for(ws.recv(), 30))


async def create_account(url: str, username: str) -> wire.Frame:
    key, amk = SigningKey.generate(), SigningKey.generate()
    device = wire.DeviceRegistration(
        device_id=device_id_for(key.public),
        name="Desk",
        sign_public=key.public,
        storage_key=key.public,
    )
    async with connect(url, compression=None) as ws:
        challenge = wire.decode_relay_frame(await ws.recv())
        signature = sign_login(key, challenge.nonce, username, device.device_id)
        await ws.send(
            wire.encode(
                wire.CreateAccount(
                    rid=1,
                    username=username,
                    password=PASSWORD,
                    device=device,
                    amk_public=amk.public,
                    signature=signature,
                )
            )
        )
        return wire.decode_relay_frame(await asyncio.wait_for(ws.recv(), 30))


def code_of(answer: wire.Frame) -> str:
    return answer.code if isinstance(answer, wire.Error) else type(answer).__name__


# ---------------------------------------------------------------------- pre-key bundles


@limits(bundle_fetch_burst=5.0, bundle_fetches_per_second=0.001)
async def test_reconnecting_does_not_refill_an_accounts_bundle_fetches(limited):
    alice = await limited.create("alice")
    bob = await limited.create("bob")
    await limited.stop(alice)
    url = limited.relay.url
    answers = []
    for _ in range(8):  # a new connection for every fetch
        async with logged_in(url, alice) as ws:
            answers.append(
                code_of(
                    await ask(
                        ws,
                        wire.FetchBundles(rid=7, username="bob", device_ids=[bob.device_id]),
                    )
                )
            )
    assert answers == ["Bundles"] * 5 + ["rate_limited"] * 3


@limits(pre_key_burst=3.0, pre_keys_per_second=0.001)
async def test_many_requesters_cannot_drain_a_targets_one_time_pre_keys(limited):
    alice = await limited.create("alice")
    carol = await limited.create("carol")
    bob = await limited.create("bob")
    await limited.stop(alice)
    await limited.stop(carol)
    store = limited.relay.relay.store
    before = store.pre_key_count(bob.device_id)
    with_pre_key = without = 0
    for requester in [alice, carol] * 5:  # two accounts, reconnecting for every fetch
        async with logged_in(limited.relay.url, requester) as ws:
            answer = await ask(
                ws, wire.FetchBundles(rid=3, username="bob", device_ids=[bob.device_id])
            )
        assert isinstance(answer, wire.Bundles) and len(answer.bundles) == 1
        if answer.bundles[0].one_time_pre_key is None:
            without += 1
        else:
            with_pre_key += 1
    # Sessions can still start (on the signed pre-key), but the one-time pre-keys are not drained.
    assert (with_pre_key, without) == (3, 7)
    assert store.pre_key_count(bob.device_id) == before - 3


# ---------------------------------------------------------------------- password guessing


@limits(
    free_login_failures_per_account=2,
    free_login_failures_per_source=100,
    login_wait_first=0.4,
    login_wait_longest=30.0,
)
async def test_failed_logins_for_an_account_wait_longer_and_longer(limited):
    await limited.create("alice")
    url = limited.relay.url
    assert [code_of(await add_device(url, "alice", "wrong password")) for _ in range(3)] == [
        "bad_credentials"
    ] * 3
    waits = []
    for _ in range(3):
        throttled = await add_device(url, "alice", PASSWORD)  # even the right password waits
        assert isinstance(throttled, wire.Error) and throttled.code == "login_throttled"
        assert throttled.retry_after is not None
        waits.append(throttled.retry_after)
        deadline = time.monotonic() + throttled.retry_after
        while time.monotonic() < deadline:  # the wait the relay named, then one more guess
            await asyncio.sleep(0.05)
        assert code_of(await add_device(url, "alice", "wrong again")) == "bad_credentials"
    assert 0 < waits[0] <= 0.4 and 0.4 < waits[1] <= 0.8 and 0.8 < waits[2] <= 1.6
    # The user sees how long to wait in the account dialog (RegistrationError.retry_after).
    with pytest.raises(RegistrationError) as refused:
        await limited.pending("alice")
    assert refused.value.code == "login_throttled" and 0 < refused.value.retry_after <= 3.2


@limits(
    free_login_failures_per_account=100,
    free_login_failures_per_source=3,
    login_wait_first=30.0,
)
async def test_failed_logins_from_one_address_are_throttled_across_accounts(limited):
    for name in ("alice", "bob", "carol", "dave", "erin"):
        await limited.create(name)
    url = limited.relay.url
    answers = [
        code_of(await add_device(url, name, "wrong password"))
        for name in ("alice", "bob", "carol", "dave", "erin")
    ]
    assert answers == ["bad_credentials"] * 4 + ["login_throttled"]
    # The throttle is the address's, not the account's: from elsewhere erin's login is checked.
    assert code_of(await add_device(url, "erin", "wrong password", "127.0.0.2")) == (
        "bad_credentials"
    )


@limits(concurrent_password_hashes=2, free_login_failures_per_source=100)
async def test_concurrent_password_hashing_is_capped(limited, monkeypatch):
    await limited.create("alice")
    running = peak = 0
    lock = threading.Lock()

    def counted(real):  # the real Argon2id, observed
        def wrapper(*args):
            nonlocal running, peak
            with lock:
                running += 1
                peak = max(peak, running)
            try:
                return real(*args)
            finally:
                with lock:
                    running -= 1

        return wrapper

    monkeypatch.setattr(relay_login, "check_password", counted(relay_login.check_password))
    monkeypatch.setattr(relay_login, "hash_password", counted(relay_login.hash_password))
    url = limited.relay.url
    answers = await asyncio.gather(
        *[add_device(url, "alice", f"wrong guess {i}") for i in range(4)],
        *[create_account(url, f"user{i}") for i in range(4)],
    )
    assert [code_of(a) for a in answers] == ["bad_credentials"] * 4 + ["Welcome"] * 4
    assert peak == 2


# ---------------------------------------------------------------------- quotas


@limits(queue_bytes=2000)
async def test_a_full_device_queue_holds_the_message_and_says_why(limited):
    alice = await limited.create("alice")
    bob = await limited.create("bob")
    await alice.send_text("bob", "hello")
    await eventually(lambda: len(bob.messages("alice")) == 1)
    await limited.stop(bob)
    deferred: list[SendDeferred] = []
    alice.add_listener(lambda e: deferred.append(e) if isinstance(e, SendDeferred) else None)
    sent = [await alice.send_text("bob", f"while bob is away {i:02}") for i in range(15)]
    await eventually(lambda: deferred, message="a message held back by bob's full queue")
    held = deferred[0].message_id
    assert alice.send_notes[held] == "bob's device has too many waiting messages — try later"
    assert limited.relay.relay.store.queue_bytes(bob.device_id) <= 2000
    message = alice._store.message(held)
    assert message is not None and message.status is MessageStatus.SENDING  # not "not sent"
    bob = await limited.start(bob)  # bob's device takes its queue: the held messages go out
    await eventually(
        lambda: [m.body for m in bob.messages("alice")][1:] == [m.body for m in sent],
        timeout=60,
        message="every held message delivered, in order",
    )
    await eventually(lambda: all(alice._store.message(m.message_id).server_ts for m in sent))
    assert not alice.send_notes


@limits(mailbox_bytes=500)
async def test_a_full_mailbox_shows_a_status_line_and_keeps_the_messages(limited, tmp_path):
    alice = await limited.create("alice")
    bob = await limited.create("bob")
    full: list[RelayLimitReached] = []
    alice.add_listener(lambda e: full.append(e) if isinstance(e, RelayLimitReached) else None)
    for i in range(12):
        await alice.send_text("bob", f"to keep {i}")
    await eventually(lambda: full, message="the mailbox quota reaches alice")
    assert full[0].code == "mailbox_full" and "full" in full[0].text
    await eventually(lambda: len(bob.messages("alice")) == 12)  # delivery is not affected
    store = limited.relay.relay.store
    assert 0 < store.mailbox_bytes("alice") <= 500
    assert alice._store.unsaved_count() > 0  # what did not fit stays marked for saving
    # With room again (a relay restarted with the default quota), the next save takes them.
    limited.relay.limits = Limits()
    await limited.relay.restart()
    after = await alice.send_text("bob", "after the restart")
    # Everything is saved once the new message is accepted (it is marked for saving in that same
    # step) and no mark remains. No mark alone is not enough: on reconnecting, the save loop may
    # save the old ones while the new message is still on its way to the relay.
    await eventually(
        lambda: (
            alice._store.message(after.message_id).server_ts is not None
            and alice._store.unsaved_count() == 0
        ),
        timeout=30,
        message="every message saved after the restart",
    )
    store = limited.relay.relay.store
    threads = store.mailbox_threads("alice")
    assert sum(count for _, count in threads) >= 13
    kept = store.mailbox_page("alice", alice.mailbox.thread_id("bob"), None, 100)
    sent = {m.message_id for m in alice.messages("bob") if not m.system}
    assert len(sent) == 13 and {row[1] for row in kept} == sent


@limits(pending_devices=1, pending_device_seconds=1)
async def test_pending_devices_are_capped_and_expire(limited):
    alice = await limited.create("alice")
    first = await limited.pending("alice", "Stranger 1")
    with pytest.raises(RegistrationError) as refused:
        await limited.pending("alice", "Stranger 2")
    assert refused.value.code == "too_many_pending"
    deadline = time.monotonic() + 10
    while True:  # the first expires (after a second or two): then there is room again
        try:
            second = await limited.pending("alice", "Stranger 3")
            break
        except RegistrationError as exc:
            assert exc.code == "too_many_pending" and time.monotonic() < deadline
            await asyncio.sleep(0.2)
    store = limited.relay.relay.store
    assert store.device(first.device_id) is None  # expired: credentials, keys and queue gone
    assert store.device(second.device_id) is not None
    assert alice.is_member


@limits(unauthenticated_connections=2)
async def test_connections_that_never_log_in_are_capped(limited):
    carol = await limited.create("carol")
    await limited.stop(carol)
    url = limited.relay.url
    async with connect(url) as idle_1, connect(url) as idle_2:
        for idle in (idle_1, idle_2):
            assert isinstance(wire.decode_relay_frame(await idle.recv()), wire.Challenge)
        async with connect(url) as third:
            answer = wire.decode_relay_frame(await third.recv())
            assert isinstance(answer, wire.Error) and answer.code == "busy"
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(third.recv(), 10)
        # A real device meanwhile says the relay is busy, and keeps trying.
        carol = await limited.start(carol)
        states: list[ConnectionStateChanged] = []
        carol.add_listener(
            lambda e: states.append(e) if isinstance(e, ConnectionStateChanged) else None
        )
        await eventually(
            lambda: any(s.state is ConnectionState.OFFLINE and "busy" in s.detail for s in states),
            message="carol's device says the relay is busy",
        )
    await eventually(lambda: carol.link.state is ConnectionState.ONLINE)  # the idle ones left


@limits(unauthenticated_connections=10, unauthenticated_per_source=2)
async def test_one_address_cannot_take_every_login_slot(limited):
    for name in ("alice", "bob", "carol"):  # logins that finished give their slot back
        await limited.create(name)
    url = limited.relay.url
    async with connect(url) as idle_1, connect(url) as idle_2:
        for idle in (idle_1, idle_2):
            assert isinstance(wire.decode_relay_frame(await idle.recv()), wire.Challenge)
        async with connect(url) as third:
            answer = wire.decode_relay_frame(await third.recv())
            assert isinstance(answer, wire.Error) and answer.code == "busy"
        # Another address (loopback has all of 127/8) still gets its challenge.
        async with connect(url, local_addr=("127.0.0.2", 0)) as elsewhere:
            assert isinstance(wire.decode_relay_frame(await elsewhere.recv()), wire.Challenge)


# ---------------------------------------------------------------------- pending devices


async def test_a_pending_device_gets_no_mailbox_no_bundles_for_it_and_no_backup(accounts, relay):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    pending = await accounts.pending("alice")
    await eventually(lambda: relay.relay.store.pre_key_count(pending.device_id) > 0)
    keys = relay.relay.store.pre_key_count(pending.device_id)
    for frame in (
        wire.FetchMailbox(rid=1, thread_id=bytes(16)),
        wire.ListMailboxThreads(rid=2),
    ):
        with pytest.raises(RelayError) as refused:
            await pending.link.request(lambda rid, f=frame: msgspec.structs.replace(f, rid=rid))
        assert refused.value.code == "pending_device"
    answer = await bob.link.request(
        lambda rid: wire.FetchBundles(
            rid=rid, username="alice", device_ids=[pending.device_id, alice.device_id]
        )
    )
    assert [b.device_id for b in answer.bundles] == [alice.device_id]
    assert relay.relay.store.pre_key_count(pending.device_id) == keys


@limits(
    free_login_failures_per_account=2,
    free_login_failures_per_source=100,
    login_wait_first=30.0,
)
async def test_the_right_password_clears_the_accounts_failures(limited):
    await limited.create("alice")
    url = limited.relay.url
    answers = [code_of(await add_device(url, "alice", "wrong password")) for _ in range(2)]
    answers.append(code_of(await add_device(url, "alice", PASSWORD)))
    answers += [code_of(await add_device(url, "alice", "wrong password")) for _ in range(2)]
    assert answers == ["bad_credentials"] * 2 + ["Welcome"] + ["bad_credentials"] * 2


@limits(pending_device_seconds=1)
async def test_an_expired_pending_device_leaves_the_approvers_list_and_is_hung_up_on(limited):
    alice = await limited.create("alice")
    stranger = await limited.pending("alice", "Stranger")

    async def listed() -> list[str]:
        answer = await alice.link.request(lambda rid: wire.ListDevices(rid=rid))
        assert isinstance(answer, wire.Devices)
        return [d.registration.device_id for d in answer.devices]

    assert stranger.device_id in await listed()
    deadline = time.monotonic() + 10
    while stranger.device_id in await listed():
        assert time.monotonic() < deadline, "the pending device never expired"
        await asyncio.sleep(0.2)
    assert limited.relay.relay.store.device(stranger.device_id) is None
    # Its connection was closed; logging in again, it learns it is gone.
    await eventually(lambda: stranger.link.state is ConnectionState.FAILED)
    assert stranger.link.login_error is not None
    assert stranger.link.login_error.code == "unknown_device"


@limits(bundle_fetch_burst=1.0, bundle_fetches_per_second=0.5)
async def test_a_send_that_needs_more_bundles_than_allowed_waits_and_goes(limited):
    alice = await limited.create("alice")
    bob = await limited.create("bob")
    carol = await limited.create("carol")
    deferred: list[SendDeferred] = []
    alice.add_listener(lambda e: deferred.append(e) if isinstance(e, SendDeferred) else None)
    await alice.send_text("bob", "one new session")
    message = await alice.send_text("carol", "and another one at once")
    await eventually(lambda: deferred, message="the second session waits for the limit")
    assert deferred[0].message_id == message.message_id
    assert deferred[0].reason == "Too many new conversations at once — try later"
    await eventually(lambda: [m.body for m in carol.messages("alice")] == [message.body])
    assert [m.body for m in bob.messages("alice")] == ["one new session"]
    assert message.message_id not in alice.send_notes


@limits(vault_call_burst=2.0, vault_calls_per_second=0.001)
async def test_reconnecting_does_not_refill_an_accounts_vault_calls(limited):
    alice = await limited.create("alice")
    await limited.stop(alice)
    answers = []
    for _ in range(3):  # a new connection for every call (PIN guesses, at the relay's pace)
        async with logged_in(limited.relay.url, alice) as ws:
            answers.append(code_of(await ask(ws, wire.VaultCall(rid=5, sealed=b"not sealed"))))
    assert answers == ["vault_refused", "vault_refused", "rate_limited"]


async def test_a_hostile_relay_cannot_put_its_words_on_a_bubble(accounts, relay, monkeypatch):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    details = iter(["Your account is locked, visit example.com", "alice 0123456789abcdef"])
    real_fan_out = HANDLERS[wire.Send]

    async def hostile_fan_out(session, frame):
        detail = next(details, None)
        if detail is None:
            return await real_fan_out(session, frame)
        raise Reject(wire.ErrorCode.QUEUE_FULL, detail)

    monkeypatch.setitem(HANDLERS, wire.Send, hostile_fan_out)
    notes: list[str] = []
    alice.add_listener(lambda e: notes.append(e.reason) if isinstance(e, SendDeferred) else None)
    message = await alice.send_text("bob", "hello")
    await eventually(lambda: [m.body for m in bob.messages("alice")] == ["hello"], timeout=30)
    assert notes == [
        "A recipient's device has too many waiting messages — try later",
        "Your other device has too many waiting messages — try later",
    ]
    assert message.message_id not in alice.send_notes
