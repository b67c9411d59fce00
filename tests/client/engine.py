"""One client concern wired to a real store and the in-memory fake relay, for unit tests."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

from client.core import storage
from client.core.context import ClientContext
from client.core.controls import Controls
from client.core.directory import Directory
from client.core.events import Event
from client.core.inbox import Inbox
from client.core.outbox import Outbox
from client.core.profile import Profile, ProfileState, Registration, write_new_profile
from client.core.sessions import SessionBook
from client.core.storage import ProfileStore
from client.core.timeline import Timeline
from shared.boxes import StorageKey
from shared.identity import SigningKey, device_id_for
from shared.session import dump_x3dh_state, new_x3dh_state
from tests.client.fake_relay import FakeRelay


@dataclass
class Engine:
    """The concerns of one device (``alice``), without a façade, a websocket or a relay."""

    store: ProfileStore
    relay: FakeRelay
    context: ClientContext
    directory: Directory
    sessions: SessionBook
    timeline: Timeline
    inbox: Inbox
    outbox: Outbox
    events: list[Event] = field(default_factory=list)


def engine(folder: Path, relay: FakeRelay, username: str = "alice") -> Engine:
    store = ProfileStore(folder, encrypt=False)
    sign_key = SigningKey.generate()
    identity = Profile(
        username=username,
        device_id=device_id_for(sign_key.public),
        device_name="Desktop",
        relay_url="ws://unused",
        sign_key=sign_key,
        storage_key=StorageKey.generate(),
    )
    x3dh = new_x3dh_state()
    x3dh.generate_pre_keys(5)
    write_new_profile(store, identity, dump_x3dh_state(x3dh), Registration.DONE, None)
    context = ClientContext(store, relay, identity, ProfileState(store))
    events: list[Event] = []
    context.listeners.append(events.append)
    directory = Directory(
        store, relay, context.emit, own_username=username, own_device=identity.device_id
    )
    sessions = SessionBook(store, x3dh, (username, identity.device_id))
    timeline = Timeline(context)
    controls = Controls(context)
    return Engine(
        store=store,
        relay=relay,
        context=context,
        directory=directory,
        sessions=sessions,
        timeline=timeline,
        inbox=Inbox(context, directory, sessions, timeline, controls),
        outbox=Outbox(context, directory, sessions, timeline, controls),
        events=events,
    )


def committed_reader(folder: Path, *, encrypt: bool = False) -> ProfileStore:
    """A second connection to a profile this process already holds, to see only what was
    committed (the one-process-per-profile lock is not what these tests look at)."""
    with mock.patch.object(storage, "hold", lambda _folder: open(os.devnull)):
        return ProfileStore(folder, encrypt=encrypt)
