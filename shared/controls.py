"""Control messages: what one device tells the others to do to a conversation's messages
(PROTOCOL.md §10 "Controls").

Unsend, delete for me, delete a conversation, the disappearing-messages timer, edits and
reactions all travel as one more kind of ordinary encrypted payload (``shared.envelope.Control``),
padded like any message, to every device of both users (only to one's own devices for "delete
for me"): the relay sees an envelope of ordinary size and nothing of what it asks.

This module holds the actions and the rules every device applies the same way, so that all
devices of both users end in the same state whatever order the controls arrive in:

- *who may*: only a message's sender unsends or edits it; only one's own account deletes for
  itself; either party sets the timer or reacts (:func:`may_change`);
- *which wins*: an edit carries a version, a reaction and a timer setting a per-user sequence;
  ties are broken by the sending device (:func:`newer`), so replaying or reordering changes
  nothing;
- *tombstones win*: a message unsent, deleted or expired never comes back (the client keeps
  tombstones; see ``client/core/controls.py``).
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Literal

import msgspec

from shared.codec import decode_strict
from shared.device_list import Username

TargetId = Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]
Seq = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
# A conversation: a contact's username, or a group's thread (``#`` and the group id in hex).
Thread = Annotated[
    str, msgspec.Meta(min_length=1, max_length=33, pattern=r"^([a-z0-9_.-]{1,32}|#[0-9a-f]{32})$")
]

# The disappearing-messages choices, in seconds (0: off).
TIMER_CHOICES = (0, 300, 3600, 86_400, 604_800)
TimerSeconds = Literal[0, 300, 3600, 86_400, 604_800]
# A message may be edited by its sender this long after it was sent (sender's clock, ms).
EDIT_WINDOW_MS = 15 * 60 * 1000
MAX_EMOJI = 16
# How far a timer setting's sequence may run ahead of the one a device holds. An honest device
# counts one past the highest it has seen, so a device that missed some settings sees a small
# gap; a contact jumping straight to the top of the range would leave the other user no larger
# number to answer with, and hold the timer for good.
SEQ_STEP = 2**32
MAX_DELETE = 500


class _Action(msgspec.Struct, tag_field="do", forbid_unknown_fields=True, frozen=True):
    pass


class Unsend(_Action, tag="unsend", frozen=True):
    """Delete for everyone: the sender's own message, on every device of both users."""

    target: TargetId


class DeleteForMe(_Action, tag="delete", frozen=True):
    """Delete on every device of the sender's own account (sent to its own devices only)."""

    targets: Annotated[list[TargetId], msgspec.Meta(min_length=1, max_length=MAX_DELETE)]


class ClearConversation(_Action, tag="clear", frozen=True):
    """Delete a whole conversation on every device of the sender's own account: every message
    whose relay time is at most ``through_ts`` (microseconds, the relay's clock)."""

    through_ts: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


class SetTimer(_Action, tag="timer", frozen=True):
    """The conversation's disappearing-messages timer, for messages sent from now on."""

    seconds: TimerSeconds
    seq: Seq


class Edit(_Action, tag="edit", frozen=True):
    """A new version of the sender's own message (version 1 is the original)."""

    target: TargetId
    version: Annotated[int, msgspec.Meta(ge=2, le=2**31)]
    body: Annotated[str, msgspec.Meta(min_length=1, max_length=16_000)]


class React(_Action, tag="react", frozen=True):
    """The sender's one reaction to a message; an empty ``emoji`` removes it."""

    target: TargetId
    emoji: Annotated[str, msgspec.Meta(max_length=MAX_EMOJI)]
    seq: Seq


Action = Unsend | DeleteForMe | ClearConversation | SetTimer | Edit | React


class ControlRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True, array_like=True):
    """A control as a device keeps it and saves it to its account's mailbox: the action with the
    authenticated sender (from the payload's ``Origin``) and its conversation."""

    control_id: TargetId
    thread: Thread
    sender_user: Username
    sender_device: str
    sent_at: int
    action: Action


_encoder = msgspec.msgpack.Encoder()
_record_decoder = msgspec.msgpack.Decoder(ControlRecord)


def encode_record(record: ControlRecord) -> bytes:
    return _encoder.encode(record)


def decode_record(data: bytes) -> ControlRecord:
    return decode_strict(_record_decoder, data, "control record")


def may_change(action: Action, sender_user: str, message_sender: str | None, own_user: str) -> bool:
    """Whether ``sender_user`` (authenticated inside the encryption) may apply ``action`` to a
    message sent by ``message_sender`` (None: not a message action) in a conversation of
    ``own_user``'s. The conversation itself is checked by the caller: it is derived from the
    sender, so a third party can only ever address its own conversation with us."""
    if isinstance(action, (DeleteForMe, ClearConversation)):
        return sender_user == own_user
    if isinstance(action, (Unsend, Edit)):
        return message_sender is not None and sender_user == message_sender
    return True  # SetTimer, React: either party of the conversation


def newer(key: tuple[int, str, str], than: tuple[int, str, str] | None) -> bool:
    """Last writer wins by (sequence or version, user, device): the same everywhere, whatever
    order the controls arrive in; a replay is never newer than itself."""
    return than is None or key > than


# What may sit between the symbols of one emoji: the zero-width joiner, the variation selectors,
# the keycap mark and the tag characters of subdivision flags.
_EMOJI_GLUE = frozenset("\u200d\ufe0e\ufe0f\u20e3") | {chr(c) for c in range(0xE0020, 0xE0080)}
_SKIN_TONES = range(0x1F3FB, 0x1F400)


def is_emoji(text: str) -> bool:
    """Whether a reaction is emoji and nothing else (``""`` removes one): it is shown under the
    bubble, so a contact's client must not put words, links or line breaks there."""
    if not text:
        return True
    symbols = 0
    for char in text:
        if unicodedata.category(char) == "So" or ord(char) in _SKIN_TONES:
            symbols += 1
        elif char in "0123456789#*" and "\u20e3" in text:
            symbols += 1  # a keycap: the digit, then U+FE0F U+20E3
        elif char not in _EMOJI_GLUE:
            return False
    return symbols > 0


def within_step(seq: int, current: int | None) -> bool:
    """Whether a timer setting's sequence is at most :data:`SEQ_STEP` past the one held."""
    return seq <= (current or 0) + SEQ_STEP


def expires_at(sent_at_ms: int, seconds: int) -> int | None:
    """When a message sent at ``sent_at_ms`` (the sender's relay-corrected clock) expires."""
    return sent_at_ms + seconds * 1000 if seconds else None


def timer_label(seconds: int) -> str:
    if seconds == 0:
        return "off"
    if seconds < 3600:
        return f"{seconds // 60} minutes"
    if seconds < 86_400:
        hours = seconds // 3600
        return "1 hour" if hours == 1 else f"{hours} hours"
    if seconds == 86_400:
        return "24 hours"
    return f"{seconds // 86_400} days"


def timer_line(user: str, seconds: int) -> str:
    if seconds == 0:
        return f"{user} turned off disappearing messages"
    return f"{user} set disappearing messages to {timer_label(seconds)}"
