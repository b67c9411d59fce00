"""The relay handlers' unit tier: a real relay state over a real SQLite store in a temporary
file (or, for tests marked ``backends``, also over PostgreSQL), sessions made by the real login
code, and no websocket.

Accounts are made the way a client makes them (login frames, then a signed device list and an
epoch published through the real handler). Another device's connection is played by a
:class:`Line`, which records what the relay pushes to it and whether it was hung up on.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from relay.handlers import HANDLERS
from relay.limits import Limits
from relay.login import log_in
from relay.server import Relay
from relay.session import Reject, Session
from relay.storage import RelayStorage
from relay.store import QueuedEnvelope, RelayStore
from relay.store_pg import PgRelayStore
from shared import wire
from shared.auth import sign_login
from shared.boxes import StorageKey
from shared.device_list import (
    DeviceEntry,
    DeviceList,
    first_device_list,
    list_hash,
    next_device_list,
    open_device_list,
)
from shared.epoch import AccountSecrets, EpochMember, OpenedEpoch, open_epoch
from shared.identity import SigningKey, device_id_for
from tests.conftest import PASSWORD, eventually


@dataclass
class Line:
    """What a connected device receives: frames, envelopes, and the close code if hung up on."""

    device_id: str
    frames: list[wire.Frame] = field(default_factory=list)
    envelopes: list[QueuedEnvelope] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)

    def push_frame(self, frame: wire.Frame) -> None:
        self.frames.append(frame)

    def push(self, envelope: QueuedEnvelope) -> None:
        self.envelopes.append(envelope)

    async def close(self, code: int, reason: str) -> None:
        self.closed.append(code)


@dataclass
class Device:
    username: str
    key: SigningKey
    storage: StorageKey
    session: Session
    replies: list[wire.Frame]  # what the relay answered later (after a commit)

    @property
    def device_id(self) -> str:
        return device_id_for(self.key.public)

    def entry(self) -> DeviceEntry:
        return DeviceEntry(
            device_id=self.device_id,
            name=self.device_id[:6],
            sign_public=self.key.public,
            identity_key=self.key.public,
            storage_key=self.storage.public,
            added_at=0,
        )


@dataclass
class Account:
    amk: SigningKey
    signed_list: bytes
    epoch: OpenedEpoch

    @property
    def device_list(self) -> DeviceList:
        return open_device_list(self.signed_list, self.epoch.head.username, self.amk.public)


class Kit:
    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.store = relay.store
        self.accounts: dict[str, Account] = {}

    @staticmethod
    def upload(epoch: OpenedEpoch) -> wire.EpochUpload:
        return _upload(epoch)

    async def call(self, device: Device, frame: Any) -> wire.Frame | None:
        """Serve one frame as the connection would: through the dispatch table. An answer is
        one of the request's reply types in ``wire.REPLIES``."""
        reply = await HANDLERS[type(frame)](device.session, frame)
        if reply is not None:
            assert isinstance(reply, wire.REPLIES[type(frame)]), (type(frame), reply)
        return reply

    async def refused(self, device: Device, frame: Any) -> str:
        with pytest.raises(Reject) as rejection:
            await self.call(device, frame)
        return rejection.value.code

    async def eventually(self, condition: Callable[[], bool]) -> None:
        """Closing another device's connection runs as a task: let it run."""
        await eventually(condition, timeout=5.0)

    async def login_refused(self, username: str, password: str = PASSWORD) -> str:
        with pytest.raises(Reject) as rejection:
            await self.pending(username, password)
        return rejection.value.code

    def connect(self, device: Device) -> Line:
        line = Line(device.device_id)
        self.relay.connections[device.device_id] = line  # type: ignore[assignment]
        return line

    async def login(self, frame_of, username: str, key: SigningKey) -> Device:  # type: ignore[no-untyped-def]
        nonce = os.urandom(32)
        device_id = device_id_for(key.public)
        storage = StorageKey.generate()
        registration = wire.DeviceRegistration(
            device_id=device_id,
            name=device_id[:6],
            sign_public=key.public,
            storage_key=storage.public,
        )
        frame = frame_of(registration, sign_login(key, nonce, username, device_id))
        got = await log_in(self.relay, frame, nonce, "127.0.0.1")
        assert got == (username, device_id)
        replies: list[wire.Frame] = []
        return Device(
            username,
            key,
            storage,
            Session(self.relay, username, device_id, replies.append),
            replies,
        )

    async def create(self, username: str) -> Device:
        """An account with one device on its first signed list and its first epoch."""
        amk = SigningKey.generate()
        device = await self.login(
            lambda registration, signature: wire.CreateAccount(
                rid=1,
                username=username,
                password=PASSWORD,
                device=registration,
                amk_public=amk.public,
                signature=signature,
            ),
            username,
            SigningKey.generate(),
        )
        await self.call(
            device,
            wire.PublishKeys(
                rid=2,
                identity_key=device.key.public,
                signed_pre_key=bytes(32),
                signed_pre_key_sig=bytes(64),
                one_time_pre_keys=[],
            ),
        )
        signed = first_device_list(amk, username, device.entry(), device.key)
        epoch = self.make_epoch(amk, username, signed, [device], None)
        assert isinstance(
            await self.call(
                device, wire.PublishDeviceList(rid=3, signed_list=signed, epoch=_upload(epoch))
            ),
            wire.Ok,
        )
        self.accounts[username] = Account(amk, signed, epoch)
        return device

    async def pending(self, username: str, password: str = PASSWORD) -> Device:
        """A new device logged in with the password: registered, not on the list."""
        return await self.login(
            lambda registration, signature: wire.AddDevice(
                rid=1,
                username=username,
                password=password,
                device=registration,
                signature=signature,
            ),
            username,
            SigningKey.generate(),
        )

    def next_list(  # type: ignore[no-untyped-def]
        self, author: Device, *, add: Device | DeviceEntry | None = None, remove: str | None = None
    ):
        """The account's next signed list and the epoch that goes with it (not published)."""
        account = self.accounts[author.username]
        signed = next_device_list(
            account.amk,
            author.key,
            account.device_list,
            account.signed_list,
            add=add.entry() if isinstance(add, Device) else add,
            remove=remove,
        )
        members = open_device_list(signed, author.username, account.amk.public).devices
        epoch = self.make_epoch(account.amk, author.username, signed, members, account.epoch)
        return signed, epoch

    def next_epoch(self, username: str) -> OpenedEpoch:
        """The account's next epoch for its current list (not published)."""
        account = self.accounts[username]
        members = account.device_list.devices
        return self.make_epoch(account.amk, username, account.signed_list, members, account.epoch)

    async def approve(self, member: Device, pending: Device) -> None:
        await self.call(
            pending,
            wire.PublishKeys(
                rid=2,
                identity_key=pending.key.public,
                signed_pre_key=bytes(32),
                signed_pre_key_sig=bytes(64),
                one_time_pre_keys=[],
            ),
        )
        signed, epoch = self.next_list(member, add=pending)
        reply = await self.call(
            member, wire.PublishDeviceList(rid=4, signed_list=signed, epoch=_upload(epoch))
        )
        assert isinstance(reply, wire.Ok)
        self.accounts[member.username] = Account(self.accounts[member.username].amk, signed, epoch)

    def make_epoch(self, amk, username, signed, devices, previous):  # type: ignore[no-untyped-def]
        return open_epoch(
            amk,
            username,
            previous=(previous.head, previous.signed_head, previous.root) if previous else None,
            members=[
                EpochMember(member_id=d.device_id, storage_key=_storage_public(d)) for d in devices
            ],
            device_list_hash=list_hash(signed),
            secrets=AccountSecrets(amk_seed=amk.seed, thread_key=bytes(32)),
        )


def _storage_public(device: Device | DeviceEntry) -> bytes:
    return device.storage.public if isinstance(device, Device) else device.storage_key


def _upload(epoch: OpenedEpoch) -> wire.EpochUpload:
    return wire.EpochUpload(
        signed_head=epoch.signed_head,
        prev_root_box=epoch.prev_root_box,
        account_box=epoch.account_box,
        grants=[wire.Grant(member_id=m, sealed=g) for m, g in epoch.grants.items()],
    )


@pytest.fixture
def limits() -> Limits:
    return Limits()


@pytest.fixture
async def kit(
    tmp_path: Path, limits: Limits, relay_backend: str, request: pytest.FixtureRequest
) -> AsyncIterator[Kit]:
    """A relay over SQLite, or (a test marked ``backends``) over a PostgreSQL the tests start."""
    store: RelayStorage
    if relay_backend == "postgres":
        store = PgRelayStore(request.getfixturevalue("postgres").database())
    else:
        store = RelayStore(tmp_path / "relay.sqlite3")
    relay = Relay(store, limits)
    yield Kit(relay)
    relay.close()
