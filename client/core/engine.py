"""The engine's concerns, each built once around one :class:`~client.core.context.ClientContext`
with the concerns below it: the directory and the epoch book report to the account, not to the
façade. :class:`~client.core.client.AriadneClient` and the tests' engines use this wiring."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from client.core.account import Account
from client.core.context import ClientContext
from client.core.control_sync import ControlSync
from client.core.controls import Controls
from client.core.devices import Devices, pairing_keys
from client.core.directory import Directory
from client.core.epochs import EpochBook
from client.core.group_send import GroupMessages
from client.core.groups import Groups
from client.core.history import History
from client.core.inbox import Inbox
from client.core.mailbox import Mailbox
from client.core.outbox import Outbox
from client.core.pairing import Pairing
from client.core.sessions import SessionBook
from client.core.timeline import Timeline
from shared.session import X3DHState


@dataclass(frozen=True)
class Engine:
    """The concerns of one device, wired together."""

    timeline: Timeline
    account: Account
    directory: Directory
    sessions: SessionBook
    epochs: EpochBook
    mailbox: Mailbox
    pairing: Pairing
    outbox: Outbox
    inbox: Inbox
    devices: Devices
    history: History
    controls: Controls
    control_sync: ControlSync
    groups: Groups
    group_messages: GroupMessages


def build_engine(context: ClientContext, x3dh: X3DHState) -> Engine:
    """Build every concern around ``context`` (its store, relay port and profile)."""
    store, port, profile = context.store, context.port, context.profile
    username, device_id = profile.username, profile.device_id
    timeline = Timeline(context)
    account = Account(context, timeline)
    directory = Directory(
        store,
        port,
        context.emit,
        account.list_changed,
        own_username=username,
        own_device=device_id,
    )
    sessions = SessionBook(store, x3dh, (username, device_id))
    epochs = EpochBook(
        store,
        port,
        username,
        device_id,
        profile.storage_key,
        functools.partial(account.trusted_public, directory),
        account.take_secrets,
    )
    mailbox = Mailbox(store, port, epochs, username, context.emit)
    pairing = Pairing(port, context.emit, functools.partial(pairing_keys, profile, x3dh))
    controls = Controls(context)
    outbox = Outbox(context, directory, sessions, timeline, controls)
    control_sync = ControlSync(context, controls, mailbox, epochs)
    mailbox.page_hook = controls
    inbox = Inbox(context, directory, sessions, timeline, controls)
    devices = Devices(context, account, directory, epochs, sessions, outbox, pairing, x3dh)
    history = History(context, account, directory, epochs, mailbox, devices, outbox)
    groups = Groups(context, directory)
    group_messages = GroupMessages(context, directory, outbox, timeline, groups, controls)
    outbox.group_sender = group_messages.send_item
    inbox.groups = group_messages
    return Engine(
        timeline,
        account,
        directory,
        sessions,
        epochs,
        mailbox,
        pairing,
        outbox,
        inbox,
        devices,
        history,
        controls,
        control_sync,
        groups,
        group_messages,
    )
