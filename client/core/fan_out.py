"""One fan-out: an outgoing item encrypted to every current device of its users and handed to
the relay in one ``Send``, and what a refusal means for the message.

The relay's answer decides what happens next: ``Mismatch`` (the relay's devices differ from the
signed lists) fetches the lists again and retries; a limit it cannot pass yet (a full queue, too
many new sessions at once) is :class:`SendLater`, and the item waits in the outbox; anything else
is :class:`SendError`, whose text is the failed bubble's. The words on a bubble are always this
module's own, never the relay's: a hostile relay could write anything there.

A part of :class:`client.core.outbox.Outbox`, which owns the queue it serves.
"""

from __future__ import annotations

import asyncio
import logging

from client.core.context import ClientContext
from client.core.directory import Directory, UnknownUser
from client.core.port import RelayError
from client.core.sessions import SessionBook
from shared import wire
from shared.device_list import DeviceEntry
from shared.envelope import encode_sealed
from shared.errors import DecryptionError

log = logging.getLogger("ariadne.client")

SEND_ATTEMPTS = 4


class SendError(Exception):
    """A message cannot be sent: no such user, or the relay's devices never match the signed one."""


class SendBlocked(SendError):
    """The contact's account key changed: sending waits for the user's acknowledgement."""


# Why the relay refused a message, as its bubble says it (the relay's own words are not shown:
# a hostile relay could write anything there).
REFUSAL_TEXT: dict[str, str] = {
    wire.ErrorCode.UNKNOWN_USER: "The relay knows no such user",
    wire.ErrorCode.INTERNAL_ERROR: "The relay failed to store it",
    wire.ErrorCode.NOT_A_MEMBER: "This device is no longer on its account",
    wire.ErrorCode.PENDING_DEVICE: "This device is not approved yet",
}


def refused(exc: RelayError) -> SendError:
    return SendError(REFUSAL_TEXT.get(exc.code, f"The relay refused it ({exc.code})"))


def failure_text(exc: SendError) -> str:
    """Why a message was not sent, as its bubble says it."""
    text = str(exc) or "The relay refused it"
    return text[0].upper() + text[1:]


class SendLater(Exception):
    """A relay limit stops this message for now; it stays in the outbox. ``reason`` is for the
    user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FanOut:
    """Encrypting and sending one item as a fan-out; the outbox's, which sets these."""

    _ctx: ClientContext
    _directory: Directory  # the users' verified device lists
    _sessions: SessionBook  # the pairwise sessions, one per device

    async def _fan_out(
        self, send_id: bytes, users: tuple[str, ...], payload: bytes
    ) -> tuple[int, list[wire.RecipientEnvelopes]]:
        """Encrypt ``payload`` to every current device of ``users`` (but this one) and send it as
        one fan-out. Returns the relay's timestamp and the envelopes it accepted."""
        for _attempt in range(SEND_ATTEMPTS):
            recipients = []
            # The ratchets' new state is committed before anything leaves, and also when a later
            # user fails: the session book's memory has moved on, the store must follow it.
            async with self._ctx.store.transaction(rollback=False):
                for username in users:
                    if self._directory.key_changed(username):
                        raise SendBlocked(f"{username}'s safety number changed")
                    try:
                        devices = await self._directory.get(username)
                    except UnknownUser:
                        raise SendError(f"there is no user {username}") from None
                    targets = [d for d in devices.devices if d.device_id != self._ctx.device_id]
                    envelopes = await self.encrypt_to(username, targets, payload)
                    recipients.append(
                        wire.RecipientEnvelopes(username=username, envelopes=envelopes)
                    )

            def send(rid: int, r: list[wire.RecipientEnvelopes] = recipients) -> wire.Frame:
                return wire.Send(rid=rid, send_id=send_id, recipients=r)

            try:
                answer = await self._ctx.port.request(send, expect=(wire.Accepted, wire.Mismatch))
            except RelayError as exc:
                if exc.code == wire.ErrorCode.RATE_LIMITED:
                    await asyncio.sleep(0.5)
                    continue
                if exc.code == wire.ErrorCode.QUEUE_FULL:
                    raise SendLater(self._queue_full_text(exc.detail, users)) from None
                if exc.code == wire.ErrorCode.UNKNOWN_USER and all(
                    self._directory.known(u) is not None for u in users
                ):
                    # Users this device holds signed lists of: a relay that does not know them
                    # lost its data (they re-create their accounts), so the message waits.
                    raise SendLater("The relay does not know this contact yet — waiting") from None
                raise refused(exc) from None
            if isinstance(answer, wire.Accepted):
                return answer.server_ts, recipients
            for mismatch in answer.users:
                await self._directory.refresh(mismatch.username)
        raise SendError("the relay's device list does not match the signed one")

    def _queue_full_text(self, detail: str, users: tuple[str, ...]) -> str:
        """What the bubble says. The relay's detail names the user; it is believed only when it
        is one of the message's own users, so the relay cannot put its own words on a bubble."""
        named = detail.split(" ")[0]
        if named == self._ctx.username:
            return "Your other device has too many waiting messages — try later"
        who = f"{named}'s device" if named in users else "A recipient's device"
        return f"{who} has too many waiting messages — try later"

    async def encrypt_to(
        self, username: str, targets: list[DeviceEntry], payload: bytes
    ) -> list[wire.Envelope]:
        envelopes = []
        new = [d for d in targets if not self._sessions.has_session((username, d.device_id))]
        bundles: dict[str, wire.PreKeyBundle] = {}
        if new:
            try:
                answer = await self._ctx.port.request(
                    lambda rid: wire.FetchBundles(
                        rid=rid, username=username, device_ids=[d.device_id for d in new]
                    ),
                    expect=wire.Bundles,
                )
            except RelayError as exc:
                if exc.code != wire.ErrorCode.RATE_LIMITED:
                    raise refused(exc) from None
                raise SendLater("Too many new conversations at once — try later") from None
            bundles = {b.device_id: b for b in answer.bundles}
        for device in targets:
            peer = (username, device.device_id)
            async with self._sessions.locks[peer]:
                try:
                    if self._sessions.has_session(peer):
                        sealed = await self._sessions.encrypt(peer, payload)
                    elif device.device_id in bundles:
                        sealed = await self._sessions.start(
                            username, device, bundles[device.device_id], payload
                        )
                    else:
                        continue  # no keys for it yet: the relay's answer will tell
                except DecryptionError as exc:
                    log.warning("cannot start a session with %s: %s", device.device_id, exc)
                    continue
            envelopes.append(
                wire.Envelope(device_id=device.device_id, payload=encode_sealed(sealed))
            )
        return envelopes
