"""What controls need beyond this device's database (PROTOCOL.md §10): the relay's clock,
disappearing messages expiring on time, and the account's mailbox.

- **Clock.** At every login the device reads the relay's clock (``FetchTime``) and keeps the
  offset (``client/core/clock.py``); expiry is judged by the relay's clock on every device.
- **Expiry.** A message with an expiry is deleted at that moment, here and in the mailbox, in
  chunks that each leave the event loop free (a window stays responsive while 10,000 messages
  expire). A device that was closed deletes what expired before it shows anything
  (:meth:`ControlSync.expire_due` runs when the profile opens); a message that arrives already
  expired (a device offline for a day, a restore) is never stored.
- **Mailbox.** Every control this device applied is sealed into its account's mailbox like a
  message, so a restored device applies it too; the sealed copies of unsent, deleted and expired
  messages are deleted from the relay (``DeleteMailboxItems``): each account deletes its own.
- **Attachments.** Those of removed messages lose their files here and this account's reference
  to their blob on the relay (``client/core/attachment_release.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from client.core.attachment_release import BlobReleases
from client.core.context import ClientContext
from client.core.controls import Controls
from client.core.epochs import EpochBook
from client.core.events import Event, MessagesRemoved
from client.core.mailbox import Mailbox
from client.core.port import Offline, RelayError
from shared import wire
from shared.controls import ControlRecord, decode_record
from shared.mailbox import SavedMessage, seal_message

log = logging.getLogger("ariadne.client.controls")

EXPIRY_CHUNK = 100  # messages deleted per transaction; the event loop runs between chunks
SAVE_BATCH = 200
LONGEST_SLEEP = 60.0  # the loop looks again at least this often (a clock that jumped)


class ControlSync:
    def __init__(
        self,
        ctx: ClientContext,
        controls: Controls,
        mailbox: Mailbox,
        epochs: EpochBook,
        chunk: int = EXPIRY_CHUNK,
    ) -> None:
        self._ctx = ctx
        self.chunk = chunk  # deletions per transaction while the loop runs
        self._mailbox = mailbox
        self._epochs = epochs
        self.wake = controls.wake
        # The attachments of removed messages (set by the client, which knows the profile's
        # folder): their files go at once, their blobs are released when the relay is reached.
        self.releases: BlobReleases | None = None
        ctx.clock.offset_ms = ctx.store.clock_offset()

    # ------------------------------------------------------------------ the clock

    async def sync_clock(self) -> None:
        clock = self._ctx.clock
        asked = clock.local_ms()
        answer = await self._ctx.port.request(
            lambda rid: wire.FetchTime(rid=rid), expect=wire.RelayTime
        )
        offset = clock.observe(answer.now_us, asked, clock.local_ms())
        with self._ctx.store.transaction():
            self._ctx.store.set_clock_offset(offset)
        self.wake.set()

    # ------------------------------------------------------------------ expiry

    def expire_due(self, limit: int | None = None) -> list[Event]:
        """Delete up to ``limit`` messages that have expired; returns what to tell the GUI."""
        store = self._ctx.store
        due = store.due(self._ctx.clock.now_ms(), limit or self.chunk)
        if not due:
            return []
        by_thread: dict[str, list[bytes]] = {}
        with store.transaction():
            for message_id, thread in due:
                store.tombstone(message_id, thread, "expired")
                store.delete_later(thread, message_id)
                by_thread.setdefault(thread, []).append(message_id)
            store.delete_messages([message_id for message_id, _ in due])
        return [MessagesRemoved(thread, tuple(ids)) for thread, ids in by_thread.items()]

    def expire_all_due(self) -> None:
        """On opening the profile, before anything is shown."""
        while self.expire_due(10_000):
            pass

    async def run(self) -> None:
        """Expire on time; save controls to the mailbox and delete sealed copies there."""
        ctx = self._ctx
        while True:
            while events := self.expire_due():
                for event in events:
                    ctx.emit(event)
                await asyncio.sleep(0)  # one chunk at a time: the window keeps drawing
            if self.releases is not None:
                self.releases.forget_files()
            if ctx.port.online.is_set():
                with contextlib.suppress(Offline, RelayError):
                    await self._sync_mailbox()
                if self.releases is not None:
                    with contextlib.suppress(Offline, RelayError):
                        await self.releases.release_due()
            offline = not ctx.port.online.is_set()
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._sleep()):
                    await self._woken(back_online=offline)

    async def _woken(self, back_online: bool) -> None:
        """Until something is to do, or (if the relay was out of reach) until it is back: what
        waited for it (mailbox deletions, blob releases) goes then, not at the next timeout."""
        if not back_online:
            await self.wake.wait()
            return
        waits = [asyncio.ensure_future(self.wake.wait())]
        waits.append(asyncio.ensure_future(self._ctx.port.online.wait()))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    def _sleep(self) -> float:
        upcoming = self._ctx.store.next_expiry()
        if upcoming is None:
            return LONGEST_SLEEP
        seconds = (upcoming - self._ctx.clock.now_ms()) / 1000
        return min(max(seconds, 0.0), LONGEST_SLEEP)

    # ------------------------------------------------------------------ the mailbox

    async def _sync_mailbox(self) -> None:
        if self._ctx.state.thread_key is None or self._epochs.latest() is None:
            return  # not a full member yet: nothing to seal with
        await self._delete_sealed_copies()
        await self._save_controls()

    async def _delete_sealed_copies(self) -> None:
        store = self._ctx.store
        while batch := store.deletions(wire.MAX_MAILBOX_PAGE):
            thread = batch[0].thread
            mine = [d for d in batch if d.thread == thread]
            through = max((d.through_ts for d in mine if d.through_ts is not None), default=None)
            tid = self._mailbox.thread_id(thread)
            ids = [d.message_id for d in mine]

            def delete(
                rid: int, t: bytes = tid, i: list[bytes] = ids, ts: int | None = through
            ) -> wire.Frame:
                return wire.DeleteMailboxItems(rid=rid, thread_id=t, message_ids=i, through_ts=ts)

            await self._ctx.port.request(delete, expect=wire.Ok)
            with store.transaction():
                store.deleted(mine)

    async def _save_controls(self) -> None:
        store = self._ctx.store
        while rows := store.unsaved_controls(SAVE_BATCH):
            latest = self._epochs.latest()
            assert latest is not None
            seq = latest[0].seq
            key = self._epochs.mailbox_key(seq)
            items = []
            for control_id, thread, ts, data in rows:
                record: ControlRecord = decode_record(data)
                tid = self._mailbox.thread_id(thread)
                saved = SavedMessage(
                    thread=thread,
                    sender_user=record.sender_user,
                    sender_device=record.sender_device,
                    sent_at=record.sent_at,
                    server_ts=ts,
                    body="",
                    control=data,
                )
                sealed = seal_message(key, self._ctx.username, tid, control_id, seq, saved)
                items.append(
                    wire.MailboxItem(
                        thread_id=tid, message_id=control_id, ts=ts, epoch=seq, sealed=sealed
                    )
                )
            try:

                def save(rid: int, i: list[wire.MailboxItem] = items) -> wire.Frame:
                    return wire.SaveMessages(rid=rid, items=i)

                await self._ctx.port.request(save, expect=wire.Ok)
            except RelayError as exc:
                if exc.code == wire.ErrorCode.STALE_EPOCH:
                    # The history loop learns the new epoch; then this loop seals again.
                    self._ctx.mailbox_wake.set()
                    asyncio.get_running_loop().call_later(0.5, self.wake.set)
                raise
            with store.transaction():
                store.controls_saved(row[0] for row in rows)
