"""What a bubble shows of the controls on its message (the quote line, "edited", the
reactions), read a page of messages at a time and kept per message.

A bubble's height depends on its decoration, and scrolling up measures a whole new page of rows
in one layout pass: read row by row, that was five to seven queries per bubble inside the pass,
the largest part of the longest scroll step at 100,000 messages. The delegate now asks for the
rows it is about to measure in one batch (:meth:`Decorations.prime`), and painting reads the
kept copy instead of the database. A kept decoration is dropped when its message changes (an
edit, an unsend, a reaction: the window's ``MessagesChanged``) or when the message it quotes
does; a reply whose original this device does not hold yet is read again when messages
arrive.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import NamedTuple

from client.core.events import StoredMessage


class Decoration(NamedTuple):
    quote: str  # the quote line above the text; "" when it replies to nothing
    notes: str  # what follows the time: "⏱", "edited", reactions with their counts
    original: bytes | None  # the message it quotes: its change changes the quote line
    waiting: bool = False  # it quotes a message this device does not hold (yet)


BARE = Decoration("", "", None)


class Decorations:
    """Decorations kept per message id, the least recently used dropped past ``kept``."""

    def __init__(
        self,
        read: Callable[[list[StoredMessage]], dict[bytes, Decoration]],
        kept: int,
    ) -> None:
        self._read = read  # every message asked for gets an entry (BARE if it has none)
        self._kept = kept
        self._cache: OrderedDict[bytes, Decoration] = OrderedDict()

    def __contains__(self, message_id: bytes) -> bool:
        return message_id in self._cache

    def get(self, message: StoredMessage) -> Decoration:
        found = self._cache.get(message.message_id)
        if found is None:
            self.prime([message])
            return self._cache.get(message.message_id, BARE)
        self._cache.move_to_end(message.message_id)
        return found

    def prime(self, messages: Iterable[StoredMessage]) -> None:
        """Read the decorations of those of ``messages`` not kept yet, in one batch."""
        missing = [m for m in messages if m.message_id not in self._cache]
        if not missing:
            return
        for message_id, decoration in self._read(missing).items():
            self._cache[message_id] = decoration
        while len(self._cache) > self._kept:
            self._cache.popitem(last=False)

    def forget_waiting(self) -> set[bytes]:
        """Messages arrived (a page from the mailbox, a new one): the replies whose original
        was not held are read again, as it may be among them; returns those dropped."""
        waiting = {m for m, d in self._cache.items() if d.waiting}
        for message_id in waiting:
            del self._cache[message_id]
        return waiting

    def forget(self, message_ids: Iterable[bytes]) -> set[bytes]:
        """These messages changed: drop them and the replies that quote them; returns every
        message dropped (their bubbles must be measured again too)."""
        changed = set(message_ids)
        quoting = {m for m, d in self._cache.items() if d.original in changed}
        for message_id in changed | quoting:
            self._cache.pop(message_id, None)
        return changed | quoting
