"""Group membership on this device: making changes (create, add, remove, leave, rename, promote)
and taking the changes other members make, each verified against the group's chain
(``shared.group``) before anything follows from it.

A change this device makes is signed with its device key, applied here, and sent over the
pairwise sessions to every member (an added member gets the whole chain; a removed one the change
that removes it). A change that arrives is applied only if it follows on the chain held here; one
that does not link (a change the relay held back) makes this device ask the sender for the
changes it misses, and a refused one leaves a system line. Every applied change leaves a system
line, the same on every device (its id is the change's hash).

Sender keys follow membership in :mod:`client.core.group_send`: a sender compares the devices
its key was given to with the members' verified device lists before every message, so any
removal makes it rotate.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time

from client.core.context import ClientContext
from client.core.directory import Directory, UnknownUser
from client.core.events import Event, GroupChanged, MessageReceived, MessageStatus, StoredMessage
from client.core.port import RelayError
from shared import wire
from shared.envelope import Group, encode_payload
from shared.errors import VerificationError
from shared.group import (
    MAX_CHANGES_PER_SHARE,
    Action,
    AskChanges,
    Changes,
    GroupChange,
    GroupMessage,
    GroupState,
    apply_change,
    change_hash,
    encode_message,
    group_id_of,
    group_thread,
    is_group_thread,
    next_change,
    open_change,
    sign_change,
)

log = logging.getLogger("ariadne.client.groups")

SHARE_BYTES = 40_000  # of signed changes per envelope (the payload limit is 60 kB)


class GroupError(Exception):
    """A change this device cannot make (not an admin, not a member, no such user)."""


class Groups:
    def __init__(self, ctx: ClientContext, directory: Directory) -> None:
        self._ctx = ctx
        self._directory = directory
        self._asked: set[tuple[bytes, int]] = set()  # (group, seq) missing changes asked for

    # ------------------------------------------------------------------ reading

    def state(self, thread: str) -> GroupState | None:
        return self._ctx.store.group(group_id_of(thread))

    def all(self) -> list[GroupState]:
        return self._ctx.store.groups()

    def key_of(self, user: str, device: str) -> bytes | None:
        """The signing key of ``device`` on ``user``'s verified device list, if it is there."""
        known = self._directory.known(user)
        entry = known.entry(device) if known is not None else None
        return entry.sign_public if entry is not None else None

    # ------------------------------------------------------------------ making changes

    async def create(self, name: str, members: list[str]) -> GroupState:
        users = {*members, self._ctx.username}
        for user in users - {self._ctx.username}:
            await self._known_user(user)
        return await self._make(None, os.urandom(16), "create", tuple(users), name.strip())

    async def add(self, thread: str, users: list[str]) -> GroupState:
        for user in users:
            await self._known_user(user)
        return await self._make(self._held(thread), None, "add", tuple(users))

    async def remove(self, thread: str, users: list[str]) -> GroupState:
        return await self._make(self._held(thread), None, "remove", tuple(users))

    async def leave(self, thread: str) -> GroupState:
        return await self._make(self._held(thread), None, "leave", (self._ctx.username,))

    async def rename(self, thread: str, name: str) -> GroupState:
        return await self._make(self._held(thread), None, "rename", (), name.strip())

    async def promote(self, thread: str, users: list[str]) -> GroupState:
        return await self._make(self._held(thread), None, "promote", tuple(users))

    def _held(self, thread: str) -> GroupState:
        state = self.state(thread)
        if state is None:
            raise GroupError("no such group here")
        return state

    async def _known_user(self, user: str) -> None:
        try:
            await self._directory.get(user)
        except UnknownUser:
            raise GroupError(f"there is no user {user}") from None

    async def _make(
        self,
        state: GroupState | None,
        new_id: bytes | None,
        action: Action,
        users: tuple[str, ...],
        name: str | None = None,
    ) -> GroupState:
        group_id = state.group_id if state is not None else new_id
        assert group_id is not None
        await self._directory.get(self._ctx.username)
        change = next_change(
            state,
            group_id,
            self._ctx.username,
            self._ctx.device_id,
            action,
            users,
            name or None,
            int(time.time() * 1000),
        )
        signed = sign_change(self._ctx.profile.sign_key, change)
        try:
            new_state, change = apply_change(state, signed, self.key_of)
        except VerificationError as exc:
            raise GroupError(str(exc)) from None
        with self._ctx.store.transaction():
            self._ctx.store.put_group(new_state, signed)
            self._forget_gone(new_state, change)
            self._system_line(new_state, change, signed, None)
            before = set(state.members) if state is not None else set()
            added = set(new_state.members) - before
            informed = (before | set(new_state.members)) - added
            self._share(group_id, [signed], informed)
            self._share(group_id, self._ctx.store.group_changes(group_id), added)
        self._ctx.emit(GroupChanged(new_state.thread))
        self._ctx.outbox_wake.set()
        return new_state

    def _share(self, group_id: bytes, changes: list[bytes], users: set[str]) -> None:
        """Queue ``changes`` for ``users`` (and this user's other devices) in the outbox."""
        if not users:
            return
        targets = sorted(users | {self._ctx.username})
        # In parts that fit one envelope (a change naming 100 members is about 1.5 kB).
        part: list[bytes] = []
        for change in changes:
            if part and (
                len(part) == MAX_CHANGES_PER_SHARE
                or sum(map(len, part)) + len(change) > SHARE_BYTES
            ):
                self.enqueue(targets, Changes(group_id=group_id, changes=part))
                part = []
            part.append(change)
        if part:
            self.enqueue(targets, Changes(group_id=group_id, changes=part))

    def enqueue(self, users: list[str], message: GroupMessage) -> None:
        """Queue a pairwise group message for every device of ``users`` (in the caller's
        transaction)."""
        for start in range(0, len(users), wire.MAX_RECIPIENT_USERS):
            payload = Group(origin=self._ctx.origin(), body=encode_message(message))
            self._ctx.store.enqueue(
                users[start : start + wire.MAX_RECIPIENT_USERS], encode_payload(payload), None
            )

    # ------------------------------------------------------------------ taking changes

    async def take_changes(self, sender: str, message: Changes, server_ts: int) -> list[Event]:
        """Apply the changes that follow on the chain held here; ask ``sender`` for missing
        ones; refuse (with a system line) what does not verify or contradicts the chain."""
        group_id = message.group_id
        state = self._ctx.store.group(group_id)
        events: list[Event] = []
        for signed in message.changes:
            try:
                change, _ = open_change(signed)
            except VerificationError:
                return events + self._refused(state, "a membership change could not be read")
            if state is not None and change.seq <= state.seq:
                if self._ctx.store.group_change(group_id, change.seq) != signed:
                    events += self._refused(
                        state, f"{sender} sent a membership change that contradicts this group's"
                    )
                continue
            if change.seq != (state.seq + 1 if state is not None else 1):
                return events + self.ask_missing(group_id, state, sender)
            await self._learn_author(change)
            try:
                state, change = apply_change(state, signed, self.key_of)
            except VerificationError as exc:
                return events + self._refused(state, f"a membership change was refused: {exc}")
            self._ctx.store.put_group(state, signed)
            self._forget_gone(state, change)
            events += self._system_line(state, change, signed, server_ts)
            events.append(GroupChanged(state.thread))
        return events

    def ask_missing(self, group_id: bytes, state: GroupState | None, sender: str) -> list[Event]:
        """Ask ``sender`` for the changes after the one held here, once per gap."""
        seq = state.seq if state is not None else 0
        if (group_id, seq) in self._asked:
            return []
        self._asked.add((group_id, seq))
        self.enqueue([sender], AskChanges(group_id=group_id, seq=seq))
        self._ctx.outbox_wake.set()
        if state is None:
            return []
        return self._line(
            state.thread,
            f"a membership change has not arrived; asked {sender} for it",
            None,
            None,
        )

    def recover(self, threads: list[str]) -> int:
        """After history is loaded on a restored (or new) device: for each group conversation it
        holds no membership for, ask the members whose messages its history shows (and this
        user's other devices) for the whole chain; it arrives over the pairwise sessions and is
        verified from ``create`` like any change. Returns how many groups were asked about."""
        asked = 0
        for thread in threads:
            if not is_group_thread(thread) or self.state(thread) is not None:
                continue
            senders = {m.sender_user for m in self._ctx.store.thread_messages(thread, limit=500)}
            senders = {u for u in senders if u} | {self._ctx.username}
            with self._ctx.store.transaction():
                self.enqueue(sorted(senders), AskChanges(group_id=group_id_of(thread), seq=0))
            asked += 1
        if asked:
            self._ctx.outbox_wake.set()
        return asked

    def answer_ask(self, asker: str, message: AskChanges) -> None:
        """Send the changes after ``message.seq`` to a member (or to one removed since)."""
        state = self._ctx.store.group(message.group_id)
        if state is None:
            return
        changes = self._ctx.store.group_changes(message.group_id, after=message.seq)
        named = {u for c in changes for u in open_change(c)[0].users}
        if changes and (asker in state.members or asker in named):
            self._share(message.group_id, changes, {asker})
            self._ctx.outbox_wake.set()

    async def _learn_author(self, change: GroupChange) -> None:
        """Make sure the author's verified list is here (a member met first in this group)."""
        if self.key_of(change.author_user, change.author_device) is not None:
            return
        # If it cannot be had, the change is refused below: its author's key is not known.
        with contextlib.suppress(UnknownUser, RelayError):
            await self._directory.refresh(change.author_user)

    def _forget_gone(self, state: GroupState, change: GroupChange) -> None:
        """A member who is gone sends nothing more here: its sender keys are deleted."""
        if change.action in ("remove", "leave"):
            for user in change.users:
                self._ctx.store.forget_peer_sender_keys(state.group_id, user, set())

    # ------------------------------------------------------------------ system lines

    def _refused(self, state: GroupState | None, line: str) -> list[Event]:
        log.warning("group change refused")
        return self._line(state.thread, line, None, None) if state is not None else []

    def _system_line(
        self, state: GroupState, change: GroupChange, signed: bytes, server_ts: int | None
    ) -> list[Event]:
        me = self._ctx.username

        def who(user: str) -> str:
            return "you" if user == me else user

        names = ", ".join(who(u) for u in change.users)
        author = "You" if change.author_user == me else change.author_user
        text = {
            "create": f"{author} created the group “{state.name}”",
            "add": f"{author} added {names}",
            "remove": f"{author} removed {names}",
            "leave": f"{author} left the group",
            "rename": f"{author} renamed the group “{state.name}”",
            "promote": f"{author} made {names} admin",
        }[change.action]
        return self._line(state.thread, text, change_hash(signed)[:16], server_ts)

    def _line(
        self, thread: str, text: str, message_id: bytes | None, server_ts: int | None
    ) -> list[Event]:
        now = time.time_ns() // 1000
        message = StoredMessage(
            message_id=message_id or os.urandom(16),
            thread=thread,
            sender_user="",
            sender_device="",
            sent_at=now // 1000,
            server_ts=server_ts or now,
            body=text,
            status=MessageStatus.SYSTEM,
        )
        if not self._ctx.store.insert_message(message):
            return []
        event = MessageReceived(message)
        if server_ts is None:
            self._ctx.emit(event)  # a line made here, not in an inbox batch
            return []
        return [event]


__all__ = ["GroupError", "Groups", "group_thread", "is_group_thread"]
