"""This device's side of the mailbox (Labyrinth §"Saving messages", §"Loading messages").

**Saving.** Every message this device sends or receives is marked to be saved in the same
transaction that stores it; the save loop seals marked messages under the newest epoch and uploads
them in batches, and unmarks them once the relay has committed them. The relay refuses items
sealed under an older epoch (``stale_epoch``): the device then learns the new epoch and seals
again, so nothing written after a revocation is readable with an older root.

**Loading.** Lazy and newest first: :meth:`Mailbox.load_page` fetches and decrypts one page of one
thread, before the oldest item loaded so far. Opening a conversation on a new device costs one
page, whatever the size of the history; the rest comes when the user scrolls up, or in the
background (:meth:`Mailbox.backfill`) with progress.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from client.core.attachments import received
from client.core.epochs import EpochBook
from client.core.events import Event, HistoryLoaded, MessageStatus, StoredMessage
from client.core.port import RelayPort
from client.core.profile import ProfileState
from client.core.storage import MailboxCursor, ProfileStore
from shared import wire
from shared.errors import ProtocolError
from shared.mailbox import SavedMessage, ThreadBox, thread_id

log = logging.getLogger("ariadne.client.mailbox")

SAVE_BATCH = 200
PAGE = 100
BACKFILL_PAGE = 500
# Messages stored per transaction by the background backfill: each write holds the event loop
# (25 ms for 4,000 restored messages, 18 ms for 2,000, 42 ms for 8,000), and fewer commits cost
# less (0.5 µs per message less than 2,000).
BACKFILL_WRITE = 4000


class PageHook(Protocol):
    """What controls do with a mailbox page (``client/core/control_sync.py``): leave out saved
    controls and expired messages before storing, apply the controls after."""

    def mailbox_page(
        self, opened: list[tuple[StoredMessage, SavedMessage | None]]
    ) -> list[StoredMessage]: ...

    def mailbox_page_stored(
        self, opened: list[tuple[StoredMessage, SavedMessage | None]]
    ) -> list[Event]: ...


class Mailbox:
    def __init__(
        self,
        store: ProfileStore,
        link: RelayPort,
        epochs: EpochBook,
        username: str,
        emit: Callable[[Event], None],
    ) -> None:
        self._store = store
        self._state = ProfileState(store)
        self._link = link
        self._epochs = epochs
        self.username = username
        self._emit = emit
        self._thread_ids: dict[str, bytes] = {}
        # One key and AES-GCM object per (epoch, thread id), not per item: set up once for all
        # the pages of a thread (an epoch's root never changes, so neither do its boxes).
        self._boxes: dict[tuple[int, bytes], ThreadBox] = {}
        self.page_hook: PageHook | None = None

    def thread_id(self, thread: str) -> bytes:
        tid = self._thread_ids.get(thread)
        if tid is None:
            key = self._state.thread_key
            assert key is not None, "the account's thread key is not known yet"
            tid = self._thread_ids[thread] = thread_id(key, thread)
        return tid

    def box(self, epoch: int, tid: bytes) -> ThreadBox:
        """The box of one thread's items under ``epoch``; raises LookupError for an epoch whose
        root this device does not hold."""
        box = self._boxes.get((epoch, tid))
        if box is None:
            key = self._epochs.mailbox_key(epoch)
            box = self._boxes[(epoch, tid)] = ThreadBox(key, self.username, tid, epoch)
        return box

    # ------------------------------------------------------------------ saving

    async def save_pending(self) -> int:
        """Upload what is marked to be saved; returns how many were saved. Raises
        :class:`~client.core.link.RelayError` (``stale_epoch``) if the relay has a newer epoch."""
        saved = 0
        while True:
            latest = self._epochs.latest()
            if latest is None or self._state.thread_key is None:
                return saved  # not a member with a root yet: keep them marked
            seq = latest[0].seq
            batch = self._store.unsaved(SAVE_BATCH)
            if not batch:
                return saved
            items = [self._seal(seq, m) for m in batch if m.server_ts is not None]
            for frame_items in _by_frame(items):

                def save(rid: int, i: list[wire.MailboxItem] = frame_items) -> wire.SaveMessages:
                    return wire.SaveMessages(rid=rid, items=i)

                await self._link.request(save, expect=wire.Ok)
            with self._store.transaction():
                self._store.saved(m.message_id for m in batch)
            saved += len(items)

    def _seal(self, seq: int, message: StoredMessage) -> wire.MailboxItem:
        assert message.server_ts is not None
        tid = self.thread_id(message.thread)
        versions = self._store.edits(message.message_id)  # the original, if edited since
        record = SavedMessage(
            thread=message.thread,
            sender_user=message.sender_user,
            sender_device=message.sender_device,
            sent_at=message.sent_at,
            server_ts=message.server_ts,
            body=versions[0][2] if versions else message.body,
            expires_at=self._store.expiry_of(message.message_id),
            reply_to=self._store.reply_of(message.message_id),
            attachment=self._attachment_pointer(message.message_id),
        )
        return wire.MailboxItem(
            thread_id=tid,
            message_id=message.message_id,
            ts=message.server_ts,
            epoch=seq,
            sealed=self.box(seq, tid).seal(message.message_id, record),
        )

    def _attachment_pointer(self, message_id: bytes) -> bytes | None:
        row = self._store.attachment(message_id)
        return row.pointer if row is not None and row.pointer else None

    # ------------------------------------------------------------------ loading

    async def sync_threads(self) -> list[MailboxCursor]:
        """Learn which threads the mailbox holds (names come from each thread's newest item)."""
        answer = await self._link.request(
            lambda rid: wire.ListMailboxThreads(rid=rid), expect=wire.MailboxThreads
        )
        cursors = []
        for entry in answer.threads:
            newest = self._open(entry.newest, None)
            if newest.undecryptable:
                # A tampered newest item must not hide the whole thread: name it from the
                # newest item of its first page that opens.
                readable = await self._first_readable(entry.thread_id)
                if readable is None:
                    log.warning("no item of a mailbox thread opens; skipped")
                    continue
                newest = readable
            cursor = self._store.mailbox_cursor(newest.thread)
            if cursor is None:
                cursor = MailboxCursor(newest.thread, entry.thread_id, entry.count, 0, None, False)
            else:
                cursor = cursor._replace(total=entry.count)
            with self._store.transaction():
                self._store.set_mailbox_cursor(cursor)
            cursors.append(cursor)
        return cursors

    async def _first_readable(self, tid: bytes) -> StoredMessage | None:
        answer = await self._link.request(
            lambda rid: wire.FetchMailbox(rid=rid, thread_id=tid, limit=PAGE),
            expect=wire.MailboxPage,
        )
        opened = (self._open(item, None) for item in answer.items)
        return next((m for m in opened if not m.undecryptable), None)

    def cursor(self, thread: str) -> MailboxCursor | None:
        """How far back ``thread`` has been loaded from the mailbox (None: never looked)."""
        return self._store.mailbox_cursor(thread)

    def has_older(self, thread: str) -> bool:
        cursor = self._store.mailbox_cursor(thread)
        return cursor is not None and not cursor.done

    async def load_page(self, thread: str, limit: int = PAGE) -> int:
        """Fetch and decrypt the page of ``thread`` before what is loaded; returns how many
        messages were new here."""
        cursor = self._store.mailbox_cursor(thread)
        if cursor is None or cursor.done:
            return 0
        answer = await self._fetch(cursor.thread_id, cursor.oldest, limit)
        return self._store_page(cursor, answer, limit)

    async def backfill(self, page: int = BACKFILL_PAGE, write: int = BACKFILL_WRITE) -> int:
        """Load every thread's history to the end, page by page, stored ``write`` messages at a
        time (each write emits progress).

        The next page is requested before this one is decrypted, so the relay's query and the
        transfer overlap with this device's work instead of adding to it. Pages are decrypted
        as they come and stored several per transaction: each commit writes every page the
        transaction changed, and consecutive pages change the same index pages. A restore
        stopped between writes loses only the decrypted pages not yet stored; the cursor says
        where to start again."""
        total = 0
        for cursor in self._store.mailbox_cursors():
            if cursor.done:
                continue
            position = cursor.oldest
            fetching = self._prefetch(cursor.thread_id, position, page)
            opened: list[tuple[StoredMessage, SavedMessage | None]] = []
            held: list[wire.MailboxItem] = []  # the items opened, for their places
            try:
                while True:
                    answer = await fetching
                    # Re-read: the user scrolling up may have loaded pages meanwhile.
                    current = self._store.mailbox_cursor(cursor.thread)
                    if current is None or current.done:
                        break
                    done = _is_last(answer, page)
                    if answer.items:
                        position = (answer.items[-1].ts, answer.items[-1].message_id)
                    if not done:
                        fetching = self._prefetch(cursor.thread_id, position, page)
                        await asyncio.sleep(0)  # let the request go out before the work starts
                    opened += self._open_items(answer.items, current.thread)
                    held += answer.items
                    if done or len(opened) >= write:
                        total += self._store_opened(current.thread, opened, held, position, done)
                        opened, held = [], []
                    if done:
                        break
            finally:
                fetching.cancel()
        return total

    def _prefetch(
        self, tid: bytes, before: tuple[int, bytes] | None, limit: int
    ) -> asyncio.Task[wire.MailboxPage]:
        task = asyncio.ensure_future(self._fetch(tid, before, limit))
        # A page fetched ahead and then not needed (the work on the one before failed) must not
        # leave an error nobody reads.
        task.add_done_callback(lambda done: done.cancelled() or done.exception())
        return task

    async def _fetch(
        self, tid: bytes, before: tuple[int, bytes] | None, limit: int
    ) -> wire.MailboxPage:
        return await self._link.request(
            lambda rid: wire.FetchMailbox(
                rid=rid,
                thread_id=tid,
                before_ts=before[0] if before else None,
                before_id=before[1] if before else None,
                limit=limit,
            ),
            expect=wire.MailboxPage,
        )

    def _store_page(self, cursor: MailboxCursor, answer: wire.MailboxPage, limit: int) -> int:
        """Decrypt and store a page fetched before ``cursor``, move the cursor past it and report
        progress; returns how many messages were new here."""
        opened = self._open_items(answer.items, cursor.thread)
        last = answer.items[-1] if answer.items else None
        oldest = (last.ts, last.message_id) if last else cursor.oldest
        done = _is_last(answer, limit)
        return self._store_opened(cursor.thread, opened, answer.items, oldest, done)

    def _store_opened(
        self,
        thread: str,
        opened: list[tuple[StoredMessage, SavedMessage | None]],
        items: list[wire.MailboxItem],
        oldest: tuple[int, bytes] | None,
        done: bool,
    ) -> int:
        """Store items decrypted from pages of ``thread`` (``opened``, from ``items``) in one
        transaction, with the cursor moved to ``oldest`` (the relay's place of the last item),
        and report progress; returns how many messages were new here.

        The backfill and the user scrolling up both load pages after the cursor, so the other
        may have moved it since these pages were asked for: what it already passed is left out
        and the cursor never moves back, so each message is stored and counted once."""
        cursor = self._store.mailbox_cursor(thread)
        assert cursor is not None, "pages are loaded only for a thread with a cursor"
        if cursor.oldest is not None:
            passed = cursor.oldest
            # (The places are made here, not kept: a restore keeps thousands of items open, and
            # every tuple it keeps is one more object for the garbage collector to walk.)
            if any((item.ts, item.message_id) >= passed for item in items):
                opened = [
                    o
                    for o, item in zip(opened, items, strict=True)
                    if (item.ts, item.message_id) < passed
                ]
            oldest = passed if oldest is None else min(oldest, passed)
        hook = self.page_hook
        messages = hook.mailbox_page(opened) if hook else [m for m, _ in opened]
        cursor = cursor._replace(
            loaded=cursor.loaded + len(opened), oldest=oldest, done=done or cursor.done
        )
        with self._store.transaction():
            # Oldest first: pages come newest first, and rows that go in in ascending order
            # fill the B-tree pages they are appended to (a fifth fewer pages to write).
            added = self._store.insert_messages(messages[::-1])
            pointers = [(m, s.attachment) for m, s in opened if s is not None and s.attachment]
            if pointers:
                kept = {message.message_id for message in messages}
                for message, pointer in pointers:
                    if message.message_id in kept:
                        self._store.put_attachment(received(message.message_id, pointer))
            self._store.set_mailbox_cursor(cursor)
            events = hook.mailbox_page_stored(opened) if hook else []
        for event in events:
            self._emit(event)
        self._emit(HistoryLoaded(thread, added, cursor.loaded, cursor.total, cursor.done))
        return added

    def _open(self, item: wire.MailboxItem, thread: str | None) -> StoredMessage:
        return self._open_items([item], thread)[0][0]

    def _open_items(
        self, items: list[wire.MailboxItem], thread: str | None
    ) -> list[tuple[StoredMessage, SavedMessage | None]]:
        """Decrypt items, each with its saved record (attachment pointer included); one that
        does not open (tampered, moved, unknown epoch) becomes a "couldn't decrypt" line instead
        of stopping the page. (One loop for a page, its lookups hoisted: a restore runs it for
        every message.)"""
        boxes, thread_ids, me = self._boxes, self._thread_ids, self.username
        opened: list[tuple[StoredMessage, SavedMessage | None]] = []
        for item in items:
            try:
                box = boxes.get((item.epoch, item.thread_id)) or self.box(
                    item.epoch, item.thread_id
                )
                saved = box.open(item.message_id, item.sealed)
                tid = thread_ids.get(saved.thread) or self.thread_id(saved.thread)
                if tid != item.thread_id or (thread and saved.thread != thread):
                    raise ProtocolError("record names another thread")
            except (ProtocolError, LookupError) as exc:
                log.info("a mailbox item did not open: %s", exc)
                opened.append((_undecryptable(item, thread), None))
                continue
            message = StoredMessage(
                message_id=item.message_id,
                thread=saved.thread,
                sender_user=saved.sender_user,
                sender_device=saved.sender_device,
                sent_at=saved.sent_at,
                server_ts=saved.server_ts,
                body=saved.body,
                status=MessageStatus.SENT if saved.sender_user == me else MessageStatus.READ,
            )
            opened.append((message, saved))
        return opened


def _undecryptable(item: wire.MailboxItem, thread: str | None) -> StoredMessage:
    return StoredMessage(
        message_id=item.message_id,
        thread=thread or "",
        sender_user="",
        sender_device="",
        sent_at=item.ts // 1000,
        server_ts=item.ts,
        body="",
        status=MessageStatus.UNDECRYPTABLE,
    )


def _is_last(answer: wire.MailboxPage, limit: int) -> bool:
    return len(answer.items) < limit and not answer.more


def _by_frame(items: list[wire.MailboxItem]) -> list[list[wire.MailboxItem]]:
    """Items in frames of at most MAILBOX_PAGE_BYTES sealed bytes (messages with thumbnails are
    large), in order."""
    frames: list[list[wire.MailboxItem]] = []
    size = 0
    for item in items:
        if not frames or size + len(item.sealed) > wire.MAILBOX_PAGE_BYTES:
            frames.append([])
            size = 0
        frames[-1].append(item)
        size += len(item.sealed)
    return frames
