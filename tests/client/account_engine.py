"""The account concerns of one device (account, devices, history) wired to a real store and the
fake relay, without a façade or a websocket: for unit tests of devices and history."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from client.core.account import Account
from client.core.context import ClientContext
from client.core.devices import Devices
from client.core.directory import Directory
from client.core.engine import build_engine
from client.core.epochs import EpochBook
from client.core.events import Event
from client.core.history import History
from client.core.profile import Profile, ProfileState, Registration, write_new_profile
from client.core.storage import ProfileStore
from shared.boxes import StorageKey
from shared.identity import SigningKey, device_id_for
from shared.session import dump_x3dh_state, new_x3dh_state
from tests.client.fake_relay import FakeRelay


@dataclass
class AccountEngine:
    store: ProfileStore
    relay: FakeRelay
    context: ClientContext
    account: Account
    directory: Directory
    epochs: EpochBook
    devices: Devices
    history: History
    events: list[Event] = field(default_factory=list)


def account_engine(
    folder: Path, relay: FakeRelay, *, first_device: bool, username: str = "alice"
) -> AccountEngine:
    """``first_device``: the account's first device, holding the account key (not yet listed);
    else a new device that holds nothing of its account yet."""
    store = ProfileStore(folder, encrypt=False)
    sign_key = SigningKey.generate()
    profile = Profile(
        username=username,
        device_id=device_id_for(sign_key.public),
        device_name="Desktop",
        relay_url="ws://unused",
        sign_key=sign_key,
        storage_key=StorageKey.generate(),
    )
    x3dh = new_x3dh_state()
    x3dh.generate_pre_keys(5)
    account_key = SigningKey.generate() if first_device else None
    write_new_profile(store, profile, dump_x3dh_state(x3dh), Registration.DONE, account_key)
    context = ClientContext(store, relay, profile, ProfileState(store))
    events: list[Event] = []
    context.listeners.append(events.append)
    e = build_engine(context, x3dh)
    return AccountEngine(
        store, relay, context, e.account, e.directory, e.epochs, e.devices, e.history, events
    )
