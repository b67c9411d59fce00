"""Group membership as a chain of signed changes, and what group members send each other
(PROTOCOL.md §12).

A group is a random 16-byte id and a chain of :class:`GroupChange` records: ``create``, then
``add``, ``remove``, ``leave``, ``rename``, ``promote``. Each change names the previous one by
hash and is signed by its author device's signing key (the key on the author's verified device
list). Every member device folds the chain into a :class:`GroupState` with :func:`apply_change`,
which refuses:

- a change whose author is not an admin (``leave`` excepted: any member may leave),
- a signature that does not verify with the author device's key,
- a change that does not follow on the state held: a wrong sequence number or previous hash —
  so a relay can neither replay an old change nor drop one unseen (the next one does not link).

Admins are the creator and whoever an admin promotes. When the last admin leaves, the remaining
member whose name sorts first becomes admin, so every device computes the same state.

Pairwise payloads about a group (:data:`GroupMessage`) travel inside the envelope payload
``shared.envelope.Group``; group texts travel encrypted once under a sender key
(``shared.sender_keys``), as :class:`GroupText`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Annotated, Literal

import msgspec

from shared.codec import decode_strict
from shared.controls import Action as ControlAction
from shared.device_list import DeviceId, Signature, Username
from shared.envelope import MAX_TEXT, MessageId, Origin, Text
from shared.errors import DecryptionError, VerificationError
from shared.identity import SigningKey, verify
from shared.sender_keys import GroupId, SenderKeyDistribution

MAX_MEMBERS = 100
MAX_GROUP_NAME = 64
MAX_CHANGES_PER_SHARE = 200
GROUP_THREAD_PREFIX = "#"
_DOMAIN = b"ariadne/group-change/v1"
_HASH_DOMAIN = b"ariadne/group-change-hash/v1\x00"
NO_PREVIOUS = bytes(32)

Action = Literal["create", "add", "remove", "leave", "rename", "promote"]
GroupName = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_GROUP_NAME)]
Hash32 = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]


class GroupChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    group_id: GroupId
    seq: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
    prev: Hash32  # hash of the previous signed change; zeros for ``create``
    author_user: Username
    author_device: DeviceId
    action: Action
    users: Annotated[tuple[Username, ...], msgspec.Meta(max_length=MAX_MEMBERS)] = ()
    name: GroupName | None = None
    at: int = 0  # the author's clock, milliseconds (shown, never trusted for order)
    v: Literal[1] = 1


class SignedGroupChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    body: Annotated[bytes, msgspec.Meta(max_length=8 * 1024)]
    signature: Signature


class GroupState(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A group as of its newest verified change."""

    group_id: GroupId
    seq: int
    head: Hash32
    name: str
    members: tuple[str, ...]  # sorted
    admins: tuple[str, ...]  # sorted, a subset of members

    @property
    def thread(self) -> str:
        return group_thread(self.group_id)


# ---------------------------------------------------------------- pairwise group messages


class _GroupMessage(
    msgspec.Struct, tag_field="kind", forbid_unknown_fields=True, frozen=True, kw_only=True
):
    group_id: GroupId


class Changes(_GroupMessage, tag="changes", frozen=True):
    """Signed changes of the group, oldest first, starting anywhere: the receiver applies those
    that follow on what it holds. An added member is sent the whole chain."""

    changes: Annotated[list[bytes], msgspec.Meta(min_length=1, max_length=MAX_CHANGES_PER_SHARE)]


class SenderKey(_GroupMessage, tag="sender_key", frozen=True):
    """The sender's sender key for the group, for the receiving device (shared.sender_keys)."""

    distribution: SenderKeyDistribution


class GroupReceipt(_GroupMessage, tag="receipt", frozen=True):
    """Sent to a message's author (and the receiver's own devices): delivered or read."""

    status: Literal["delivered", "read"]
    message_ids: Annotated[list[MessageId], msgspec.Meta(min_length=1, max_length=1000)]


class AskChanges(_GroupMessage, tag="ask_changes", frozen=True):
    """A member saw a message from a newer membership than it holds: send the changes after
    ``seq``."""

    seq: int


class OwnControl(_GroupMessage, tag="own_control", frozen=True):
    """A deletion for this account alone (delete for me, delete the conversation) in a group:
    sent pairwise to the sender's own devices only, so no other member learns of it."""

    control_id: MessageId
    sent_at: int
    action: ControlAction


GroupMessage = Changes | SenderKey | GroupReceipt | AskChanges | OwnControl


class GroupText(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The plaintext under a sender key. ``seq`` and ``head`` are the membership the sender
    encrypted for: a receiver behind it asks for the missing changes, one whose chain differs at
    that number refuses the message (a fork)."""

    origin: Origin
    message_id: MessageId
    sent_at: int
    body: Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]
    seq: int
    head: Hash32
    v: Literal[1] = 1
    # As in a one-to-one ``Text`` (PROTOCOL.md §10): the message quoted, and when this one
    # disappears (sender's relay-corrected clock, ms), both inside the encryption.
    reply_to: MessageId | None = None
    expires_at: int | None = None


class GroupControl(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A control for every member (unsend, edit, reaction, timer) under the sender key, like a
    :class:`GroupText`: the same membership (``seq``, ``head``) named and checked, the same
    authenticated origin, the same replay protection."""

    origin: Origin
    control_id: MessageId
    sent_at: int
    action: ControlAction
    seq: int
    head: Hash32
    v: Literal[1] = 1


_encoder = msgspec.msgpack.Encoder()
_change_decoder = msgspec.msgpack.Decoder(GroupChange)
_signed_decoder = msgspec.msgpack.Decoder(SignedGroupChange)
_message_decoder = msgspec.msgpack.Decoder(GroupMessage)
_text_decoder = msgspec.msgpack.Decoder(GroupText)
_control_decoder = msgspec.msgpack.Decoder(GroupControl)

KeyLookup = Callable[[str, str], bytes | None]


def group_thread(group_id: bytes) -> str:
    """The thread name of a group: no username can look like it (usernames have no ``#``)."""
    return GROUP_THREAD_PREFIX + group_id.hex()


def is_group_thread(thread: str) -> bool:
    return thread.startswith(GROUP_THREAD_PREFIX)


def group_id_of(thread: str) -> bytes:
    if not is_group_thread(thread):
        raise ValueError(f"{thread!r} is not a group thread")
    return bytes.fromhex(thread[len(GROUP_THREAD_PREFIX) :])


def change_hash(signed: bytes) -> bytes:
    return hashlib.sha256(_HASH_DOMAIN + signed).digest()


def sign_change(key: SigningKey, change: GroupChange) -> bytes:
    body = _encoder.encode(change)
    return _encoder.encode(SignedGroupChange(body=body, signature=key.sign(_DOMAIN, body)))


def open_change(signed: bytes) -> tuple[GroupChange, SignedGroupChange]:
    outer = decode_strict(_signed_decoder, signed, "group change", VerificationError)
    return decode_strict(_change_decoder, outer.body, "group change", VerificationError), outer


def next_change(
    state: GroupState | None,
    group_id: bytes,
    author_user: str,
    author_device: str,
    action: Action,
    users: tuple[str, ...] = (),
    name: str | None = None,
    at: int = 0,
) -> GroupChange:
    """The change that follows ``state`` (None: a ``create``)."""
    return GroupChange(
        group_id=group_id,
        seq=1 if state is None else state.seq + 1,
        prev=NO_PREVIOUS if state is None else state.head,
        author_user=author_user,
        author_device=author_device,
        action=action,
        users=tuple(sorted(set(users))),
        name=name,
        at=at,
    )


def apply_change(
    state: GroupState | None, signed: bytes, key_of: KeyLookup
) -> tuple[GroupState, GroupChange]:
    """Verify ``signed`` against ``state`` (None before ``create``) and return the new state.

    ``key_of(user, device)`` is the signing key of ``device`` on ``user``'s verified device list,
    or None. Raises :class:`VerificationError` for anything the rules refuse."""
    change, outer = open_change(signed)
    if state is not None and change.group_id != state.group_id:
        raise VerificationError("the change is for another group")
    expected_seq = 1 if state is None else state.seq + 1
    expected_prev = NO_PREVIOUS if state is None else state.head
    if change.seq != expected_seq or change.prev != expected_prev:
        raise VerificationError(
            f"change {change.seq} does not follow on change {expected_seq - 1} held here"
        )
    key = key_of(change.author_user, change.author_device)
    if key is None:
        raise VerificationError("the author device is not on its user's verified device list")
    if not verify(key, outer.signature, _DOMAIN, outer.body):
        raise VerificationError("the change's signature does not verify")
    members, admins, name = _rules(state, change)
    if not admins and members:
        admins = {min(members)}
    new_state = GroupState(
        group_id=change.group_id,
        seq=change.seq,
        head=change_hash(signed),
        name=name,
        members=tuple(sorted(members)),
        admins=tuple(sorted(admins)),
    )
    return new_state, change


def _rules(state: GroupState | None, change: GroupChange) -> tuple[set[str], set[str], str]:
    """Members, admins and name after ``change``, or :class:`VerificationError`."""
    users = set(change.users)
    if len(users) != len(change.users):
        raise VerificationError("the change names a user twice")
    if change.action == "create":
        if state is not None:
            raise VerificationError("a group is created once")
        if change.author_user not in users or change.name is None:
            raise VerificationError("a new group names its creator and a name")
        # (No more than MAX_MEMBERS users: a change naming more does not decode.)
        return users, {change.author_user}, change.name
    if state is None:
        raise VerificationError("the group's first change must create it")
    members, admins, name = set(state.members), set(state.admins), state.name
    if change.author_user not in members:
        raise VerificationError(f"{change.author_user} is not a member")
    if change.action == "leave":
        if users != {change.author_user}:
            raise VerificationError("a member leaves only by itself")
        return members - users, admins - users, name
    if change.author_user not in admins:
        raise VerificationError(f"{change.author_user} is not an admin")
    if change.action == "add":
        if not users or users & members:
            raise VerificationError("an add names users who are not members yet")
        if len(members | users) > MAX_MEMBERS:
            raise VerificationError(f"a group has at most {MAX_MEMBERS} members")
        return members | users, admins, name
    if change.action == "remove":
        if not users or not users <= members or change.author_user in users:
            raise VerificationError("a remove names other members")
        return members - users, admins - users, name
    if change.action == "rename":
        if change.name is None:
            raise VerificationError("a rename names the new name")
        return members, admins, change.name
    if not users or not users <= members or users & admins:  # promote
        raise VerificationError("a promotion names members who are not admins")
    return members, admins | users, name


def verify_chain(changes: list[bytes], key_of: KeyLookup) -> GroupState:
    """The state a whole chain, from ``create``, leads to."""
    state: GroupState | None = None
    for signed in changes:
        state, _ = apply_change(state, signed, key_of)
    if state is None:
        raise VerificationError("an empty chain")
    return state


def group_text(text: Text) -> bytes:
    """A queued group text with a text's fields; its membership is set when it leaves."""
    return encode_message(
        GroupText(
            origin=text.origin,
            message_id=text.message_id,
            sent_at=text.sent_at,
            body=text.body,
            seq=0,
            head=bytes(32),
            reply_to=text.reply_to,
            expires_at=text.expires_at,
        )
    )


def encode_message(message: GroupMessage | GroupText | GroupControl) -> bytes:
    return _encoder.encode(message)


def decode_message(data: bytes) -> GroupMessage:
    return decode_strict(_message_decoder, data, "group message", DecryptionError)


def decode_text(data: bytes) -> GroupText:
    return decode_strict(_text_decoder, data, "group text", DecryptionError)


def decode_sealed(data: bytes) -> GroupText | GroupControl:
    """The plaintext under a sender key: a text, or a control (their fields differ, and unknown
    fields are refused, so one never decodes as the other)."""
    try:
        return decode_text(data)
    except DecryptionError:
        return decode_strict(_control_decoder, data, "group control", DecryptionError)


def for_membership(data: bytes, seq: int, head: bytes) -> bytes:
    """A queued text or control, stamped with the membership it is encrypted for."""
    sealed = decode_sealed(data)
    return encode_message(msgspec.structs.replace(sealed, seq=seq, head=head))
