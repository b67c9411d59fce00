"""Frames between a device and the relay (MessagePack, one frame per websocket message).

Every frame is a tagged msgspec Struct with a protocol version; decoding is strict (unknown
fields, wrong types, oversized values and unknown tags are all rejected), so bad input is stopped
at the edge. Requests carry a request id ``rid`` that the relay's answer repeats; ``Deliver`` and
``Notice`` frames are pushed by the relay.

Nothing in a frame is secret from the relay except envelope payloads, which are end-to-end
encrypted (see ``shared.envelope``).
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal, TypeVar

import msgspec

from shared.codec import decode_strict
from shared.device_list import DeviceId, DeviceName, Key32, Signature, Username
from shared.envelope import MessageId
from shared.errors import WireError

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 512 * 1024
MAX_RETRY_AFTER = 24 * 3600.0
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_PREKEYS_PER_UPLOAD = 200
# Below this many one-time pre-keys left, a device uploads more: at login (``Welcome`` says how
# many are left) and when the relay pushes a ``prekeys_low`` notice.
PRE_KEYS_LOW = 20
MAX_RECIPIENT_USERS = 8
MAX_ENVELOPES_PER_USER = 64
MAX_ACKS = 1000
MAX_DELIVER = 256

Rid = Annotated[int, msgspec.Meta(ge=0, lt=2**53)]
Seq = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
MIN_PASSWORD = 8
MAX_PASSWORD = 256
Password = Annotated[str, msgspec.Meta(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)]
SealedPayload = Annotated[bytes, msgspec.Meta(min_length=1, max_length=MAX_PAYLOAD_BYTES)]
SignedList = Annotated[bytes, msgspec.Meta(max_length=40 * 1024)]
ThreadId = Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]
MAX_MAILBOX_PAGE = 500
# Sealed bytes per mailbox page, and per frame of saved items: a page of large items (messages
# with thumbnails) is cut short of its count to stay within MAX_FRAME_BYTES.
MAILBOX_PAGE_BYTES = 384 * 1024


class Frame(msgspec.Struct, tag_field="t", forbid_unknown_fields=True, kw_only=True, frozen=True):
    v: Literal[1] = 1


# ---------------------------------------------------------------- shared pieces


class DeviceRegistration(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    device_id: DeviceId
    name: DeviceName
    sign_public: Key32
    storage_key: Key32  # X25519: receives epoch grants once the device is a member


class PreKeyBundle(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The public X3DH keys of one device, with at most one one-time pre-key."""

    device_id: DeviceId
    identity_key: Key32
    signed_pre_key: Key32
    signed_pre_key_sig: Signature
    one_time_pre_key: Key32 | None


class Envelope(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    device_id: DeviceId
    payload: SealedPayload


class RecipientEnvelopes(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    username: Username
    envelopes: Annotated[list[Envelope], msgspec.Meta(max_length=MAX_ENVELOPES_PER_USER)]


class DeviceMismatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    username: Username
    missing: list[DeviceId]
    extra: list[DeviceId]


class Grant(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    member_id: DeviceId
    sealed: Annotated[bytes, msgspec.Meta(max_length=512)]


class EpochUpload(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A new epoch (shared.epoch): signed head, boxes under its root, one grant per member."""

    signed_head: Annotated[bytes, msgspec.Meta(max_length=16 * 1024)]
    prev_root_box: Annotated[bytes, msgspec.Meta(max_length=128)]
    account_box: Annotated[bytes, msgspec.Meta(max_length=512)]
    grants: Annotated[list[Grant], msgspec.Meta(min_length=1, max_length=80)]


class EpochData(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One stored epoch, with the asking member's grant if it has one."""

    signed_head: bytes
    prev_root_box: bytes
    account_box: bytes
    grant: bytes | None


class MailboxItem(msgspec.Struct, frozen=True, forbid_unknown_fields=True, array_like=True):
    thread_id: ThreadId
    message_id: MessageId
    ts: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
    epoch: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
    sealed: Annotated[bytes, msgspec.Meta(min_length=28, max_length=MAX_PAYLOAD_BYTES)]


class MailboxThread(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    thread_id: ThreadId
    count: int
    newest: MailboxItem


class RegisteredDevice(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A device the relay knows for the account: a member (on the signed list) or pending, with
    its pairing offer's commitment while the offer is fresh."""

    registration: DeviceRegistration
    identity_key: Key32 | None
    registered_at: int
    last_seen: int
    member: bool
    pairing_commitment: Key32 | None = None
    pairing_at: int | None = None  # when the fresh offer was made (tells two requests apart)


# ---------------------------------------------------------------- device -> relay


class CreateAccount(Frame, tag="create_account", frozen=True):
    """First device of a new account: password, device key and the account master key."""

    rid: Rid
    username: Username
    password: Password
    device: DeviceRegistration
    amk_public: Key32
    signature: Signature  # over the relay's nonce (shared.auth)


class AddDevice(Frame, tag="add_device", frozen=True):
    """Log in with the password on a new device; it is pending until a signed list names it."""

    rid: Rid
    username: Username
    password: Password
    device: DeviceRegistration
    signature: Signature


class Resume(Frame, tag="resume", frozen=True):
    """Log in as a device the relay already knows, by signature alone."""

    rid: Rid
    username: Username
    device_id: DeviceId
    signature: Signature


class PublishKeys(Frame, tag="publish_keys", frozen=True):
    rid: Rid
    identity_key: Key32
    signed_pre_key: Key32
    signed_pre_key_sig: Signature
    one_time_pre_keys: Annotated[list[Key32], msgspec.Meta(max_length=MAX_PREKEYS_PER_UPLOAD)]


class PublishDeviceList(Frame, tag="publish_device_list", frozen=True):
    """A new device list always comes with the epoch opened for it, stored in one transaction."""

    rid: Rid
    signed_list: SignedList
    epoch: EpochUpload


class PublishEpoch(Frame, tag="publish_epoch", frozen=True):
    """A new epoch for the same device list (e.g. a new recovery code, a new virtual device)."""

    rid: Rid
    epoch: EpochUpload


class FetchEpochs(Frame, tag="fetch_epochs", frozen=True):
    """Epochs after ``since``, with ``member_id``'s grants. A device asks for its own; a device
    restoring with a recovery code asks for the virtual device's and shows the virtual device's
    signature over (user, asking device) as its membership ``proof``."""

    rid: Rid
    since: Annotated[int, msgspec.Meta(ge=0)]
    member_id: DeviceId | None = None
    proof: Signature | None = None


class SaveMessages(Frame, tag="save_messages", frozen=True):
    """Items for this user's mailbox, all sealed under the newest epoch."""

    rid: Rid
    items: Annotated[list[MailboxItem], msgspec.Meta(min_length=1, max_length=MAX_MAILBOX_PAGE)]


class FetchMailbox(Frame, tag="fetch_mailbox", frozen=True):
    """A page of one thread, newest first, strictly before ``(before_ts, before_id)`` if given."""

    rid: Rid
    thread_id: ThreadId
    before_ts: int | None = None
    before_id: MessageId | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_MAILBOX_PAGE)] = 100


class ListMailboxThreads(Frame, tag="list_mailbox_threads", frozen=True):
    rid: Rid


class FetchVaultKey(Frame, tag="fetch_vault_key", frozen=True):
    rid: Rid


class VaultCall(Frame, tag="vault_call", frozen=True):
    """An opaque request for the vault (shared.pin), sealed to the vault's key."""

    rid: Rid
    sealed: Annotated[bytes, msgspec.Meta(max_length=2048)]


class FetchDeviceList(Frame, tag="fetch_device_list", frozen=True):
    """The user's current list; with ``since`` (the version the asking device holds) also the
    lists between, so that the asking device can check each change's author in turn."""

    rid: Rid
    username: Username
    since: Annotated[int, msgspec.Meta(ge=0)] | None = None


class FetchBundles(Frame, tag="fetch_bundles", frozen=True):
    rid: Rid
    username: Username
    device_ids: Annotated[list[DeviceId], msgspec.Meta(min_length=1, max_length=64)]


class ListDevices(Frame, tag="list_devices", frozen=True):
    rid: Rid


class OfferPairing(Frame, tag="offer_pairing", frozen=True):
    """A pending device asks to be approved, committing to its pairing nonce (shared.pairing)."""

    rid: Rid
    commitment: Key32


class PairingSend(Frame, tag="pairing_send", frozen=True):
    """A pairing message for another device of the same account (both may be pending)."""

    rid: Rid
    to_device: DeviceId
    payload: Annotated[bytes, msgspec.Meta(max_length=1024)]


class RejectDevice(Frame, tag="reject_device", frozen=True):
    """A member device discards a pending device's registration."""

    rid: Rid
    device_id: DeviceId


class Send(Frame, tag="send", frozen=True):
    """One fan-out: for each named user, exactly one envelope per current device.

    ``send_id`` makes a resend idempotent: if the relay stored this fan-out but the answer was
    lost, the resend gets the original ``Accepted`` and nothing is queued twice."""

    rid: Rid
    send_id: Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]
    recipients: Annotated[
        list[RecipientEnvelopes], msgspec.Meta(min_length=1, max_length=MAX_RECIPIENT_USERS)
    ]


class ChangePassword(Frame, tag="change_password", frozen=True):
    """A member device sets the account's new password. Every login made with the old one ends:
    the relay forgets the account's pending devices and closes their connections."""

    rid: Rid
    password: Password


class Inspect(Frame, tag="inspect", frozen=True):
    """Ask what the relay holds and has seen of this user's conversation with ``peer``."""

    rid: Rid
    peer: Username


class Ack(Frame, tag="ack", frozen=True):
    seqs: Annotated[list[Seq], msgspec.Meta(min_length=1, max_length=MAX_ACKS)]


MAX_GROUP_USERS = 100


class GroupRecipient(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    username: Username
    device_ids: Annotated[list[DeviceId], msgspec.Meta(max_length=MAX_ENVELOPES_PER_USER)]


class GroupSend(Frame, tag="group_send", frozen=True):
    """One group message (``shared.sender_keys``), encrypted once: the relay queues the same
    bytes for every listed device. As with ``Send``, each user's devices must be exactly the
    user's current ones (else ``Mismatch``), and ``send_id`` makes a resend idempotent."""

    rid: Rid
    send_id: Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]
    payload: SealedPayload
    recipients: Annotated[
        list[GroupRecipient], msgspec.Meta(min_length=1, max_length=MAX_GROUP_USERS)
    ]


# ---------------------------------------------------------------- relay -> device


class Challenge(Frame, tag="challenge", frozen=True):
    nonce: Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]


class Welcome(Frame, tag="welcome", frozen=True):
    rid: Rid
    device_id: DeviceId
    one_time_pre_keys_left: int


class Ok(Frame, tag="ok", frozen=True):
    rid: Rid


class ErrorCode(enum.StrEnum):
    """Why the relay refused a frame. A ``StrEnum``, so a code still compares equal to its text.

    A code this version does not know (a newer relay's) decodes as ``UNKNOWN``, so the request it
    answers still fails as a refusal instead of the whole frame being dropped as malformed."""

    BUSY = "busy"  # the relay has no room for another connection: try again shortly
    BAD_FRAME = "bad_frame"  # the frame could not be decoded (its ``rid`` is None)
    LOGIN_REQUIRED = "login_required"  # anything but a login before logging in
    ALREADY_LOGGED_IN = "already_logged_in"  # a second login on one connection
    UNSUPPORTED = "unsupported"  # a frame the relay does not handle after login
    BAD_DEVICE_ID = "bad_device_id"  # the device id does not match its signing key
    BAD_SIGNATURE = "bad_signature"  # the login signature over the challenge does not verify
    DEVICE_TAKEN = "device_taken"  # the device is registered to another account
    USERNAME_TAKEN = "username_taken"  # a new account asked for a username in use
    LOGIN_THROTTLED = "login_throttled"  # too many wrong passwords: ``retry_after`` says when
    BAD_CREDENTIALS = "bad_credentials"  # wrong username or password
    TOO_MANY_PENDING = "too_many_pending"  # the account has as many pending devices as allowed
    UNKNOWN_DEVICE = "unknown_device"  # no such device on the account (never or no longer)
    IDENTITY_KEY_TAKEN = "identity_key_taken"  # another device published this identity key
    RATE_LIMITED = "rate_limited"  # too many requests of this kind: ``retry_after`` if known
    INTERNAL_ERROR = "internal_error"  # the relay failed while handling it; nothing was stored
    NO_VAULT = "no_vault"  # this relay runs without a PIN vault
    PENDING_DEVICE = "pending_device"  # only a device on its account's device list may do this
    BAD_REQUEST = "bad_request"  # contradicts itself (a user or device twice, half a cursor)
    UNKNOWN_USER = "unknown_user"  # a recipient user does not exist
    QUEUE_FULL = "queue_full"  # a recipient device's queue is full; nothing was queued
    BAD_DEVICE_LIST = "bad_device_list"  # the signed list is malformed or does not follow on
    NOT_A_MEMBER = "not_a_member"  # the asking (or proving) device is not a listed member
    BAD_EPOCH = "bad_epoch"  # the epoch is malformed or does not chain to the previous one
    STALE_EPOCH = "stale_epoch"  # mailbox items must be sealed under the newest epoch
    MAILBOX_FULL = "mailbox_full"  # the account's mailbox holds as many bytes as allowed
    VAULT_REFUSED = "vault_refused"  # the vault could not open the sealed request
    ALREADY_MEMBER = "already_member"  # a listed device offered itself for pairing
    NO_OFFER = "no_offer"  # the pending device has no fresh request to be approved
    PAIRING_BUSY = "pairing_busy"  # another device is already approving that one
    NOT_STARTED = "not_started"  # a pending device answered an approval nobody started
    NOT_CONNECTED = "not_connected"  # the device a pairing message is for is not online
    IS_MEMBER = "is_member"  # a listed device is removed by a new list, not rejected
    UNKNOWN = "unknown"  # a code from a newer relay that this version does not know
    BLOB_QUOTA = "blob_quota"  # the account's attachments hold as many bytes as allowed
    BLOB_TOO_LARGE = "blob_too_large"  # an attachment beyond the largest blob
    NO_BLOB = "no_blob"  # no such attachment for this account and capability (or it is gone)

    @classmethod
    def _missing_(cls, value: object) -> ErrorCode:
        return cls.UNKNOWN


class Error(Frame, tag="error", frozen=True):
    """``rid`` is None when the frame that caused the error could not be decoded."""

    rid: Rid | None
    code: ErrorCode
    detail: str = ""
    # Seconds, for a limit that lifts by itself (at most a day: a client shows it to the user).
    retry_after: Annotated[float, msgspec.Meta(ge=0, le=MAX_RETRY_AFTER)] | None = None


class Accepted(Frame, tag="accepted", frozen=True):
    rid: Rid
    server_ts: int


class Mismatch(Frame, tag="mismatch", frozen=True):
    rid: Rid
    users: list[DeviceMismatch]


MAX_LISTS_BETWEEN = 32


class DeviceListReply(Frame, tag="device_list", frozen=True):
    rid: Rid
    signed_list: SignedList | None
    # The lists after the asked ``since`` and before ``signed_list``, oldest first (at most
    # MAX_LISTS_BETWEEN: the asking device asks again from the last one for more).
    between: Annotated[list[SignedList], msgspec.Meta(max_length=MAX_LISTS_BETWEEN)] = []


class Bundles(Frame, tag="bundles", frozen=True):
    rid: Rid
    bundles: list[PreKeyBundle]


class Devices(Frame, tag="devices", frozen=True):
    rid: Rid
    devices: list[RegisteredDevice]


class PairingPush(Frame, tag="pairing_push", frozen=True):
    from_device: DeviceId
    payload: bytes


class Delivered(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One queued envelope; ``seq`` is what the device acknowledges."""

    seq: Seq
    sender_user: Username
    sender_device: DeviceId
    server_ts: int
    payload: SealedPayload


class Deliver(Frame, tag="deliver", frozen=True):
    """Queued envelopes in queue order; as many as are ready, so a busy device gets few frames."""

    envelopes: Annotated[list[Delivered], msgspec.Meta(min_length=1, max_length=MAX_DELIVER)]


class SeenEnvelope(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One envelope as the relay saw it: everything it knows about it, nothing more."""

    seq: Seq
    server_ts: int
    sender_user: Username
    sender_device: DeviceId
    recipient_user: Username
    device_id: DeviceId
    size: int
    excerpt: bytes  # the last bytes of what the relay holds (mostly ciphertext), to look at
    queued: bool  # still in the device's queue (not yet acknowledged)


class Inspection(Frame, tag="inspection", frozen=True):
    rid: Rid
    envelopes: list[SeenEnvelope]


class Epochs(Frame, tag="epochs", frozen=True):
    rid: Rid
    epochs: list[EpochData]


class MailboxPage(Frame, tag="mailbox_page", frozen=True):
    rid: Rid
    items: list[MailboxItem]
    # The page stopped before ``limit`` items to stay within one frame (items with thumbnails
    # are large): there may be more.
    more: bool = False


class MailboxThreads(Frame, tag="mailbox_threads", frozen=True):
    rid: Rid
    threads: list[MailboxThread]


class VaultKey(Frame, tag="vault_key", frozen=True):
    rid: Rid
    public: Key32


class VaultReply(Frame, tag="vault_reply", frozen=True):
    rid: Rid
    sealed: bytes


class EpochRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An epoch as a member device holds it: the signed head and the boxes under its root (no
    grants: those were sealed to each member, and each member keeps what it opened)."""

    signed_head: Annotated[bytes, msgspec.Meta(max_length=16 * 1024)]
    prev_root_box: Annotated[bytes, msgspec.Meta(max_length=128)]
    account_box: Annotated[bytes, msgspec.Meta(max_length=512)]


MAX_REBUILT_EPOCHS = 512


class RebuildAccount(Frame, tag="rebuild_account", frozen=True):
    """Re-create an account on a relay that lost it, from what a member device holds: its
    current signed device list and the account's epochs, from the first. Only right after the
    account was created again (the relay holds no list and no epoch for it); the relay registers
    the listed devices from the signed list."""

    rid: Rid
    signed_list: SignedList
    epochs: Annotated[list[EpochRecord], msgspec.Meta(max_length=MAX_REBUILT_EPOCHS)]


class NotRegistered(Frame, tag="not_registered", frozen=True):
    """The answer to a ``Resume`` from a device the relay does not know. It was removed, or the
    relay lost its data, or says so: the answer itself proves nothing. ``lists`` are the
    account's newest signed device lists, oldest first; only a list without the device, verified
    under the device-list rules against the lists the device holds, proves a removal."""

    rid: Rid
    lists: Annotated[list[SignedList], msgspec.Meta(max_length=MAX_LISTS_BETWEEN)] = []


class Notice(Frame, tag="notice", frozen=True):
    """A push that needs no answer: ``device_list_changed`` (with a username), ``prekeys_low``,
    ``epoch_changed`` (this user's account opened a new epoch)."""

    kind: Literal["device_list_changed", "prekeys_low", "epoch_changed", "pairing_offer"]
    username: Username | None = None
    count: int = 0


class DeleteMailboxItems(Frame, tag="delete_mailbox_items", frozen=True):
    """Delete items of one thread of this user's mailbox: the listed message ids, and with
    ``through_ts`` every item up to that time (a deleted conversation). Unsend, delete and expiry
    (PROTOCOL.md §10): each account deletes its own sealed copy."""

    rid: Rid
    thread_id: ThreadId
    message_ids: Annotated[list[MessageId], msgspec.Meta(max_length=MAX_MAILBOX_PAGE)]
    through_ts: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] | None = None


class FetchTime(Frame, tag="fetch_time", frozen=True):
    """The relay's clock, which decides when disappearing messages expire (PROTOCOL.md §10)."""

    rid: Rid


class RelayTime(Frame, tag="relay_time", frozen=True):
    rid: Rid
    now_us: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


# ---------------------------------------------------------------- attachments (PROTOCOL.md §11)

# Blob bytes per upload or download frame: with the frame's few other fields, well within
# MAX_FRAME_BYTES.
BLOB_FRAME = 256 * 1024
BlobId = Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]
BlobOffset = Annotated[int, msgspec.Meta(ge=0, lt=2**40)]


class StartUpload(Frame, tag="start_upload", frozen=True):
    """Reserve a blob of ``size`` ciphertext bytes. The relay hands it out only to the uploader's
    account and to ``readers``, and only to a device showing the capability whose SHA-256 is
    ``capability_hash`` (the capability itself travels end to end inside the message)."""

    rid: Rid
    size: BlobOffset
    capability_hash: Key32
    readers: Annotated[list[Username], msgspec.Meta(max_length=MAX_RECIPIENT_USERS)]


class UploadChunk(Frame, tag="upload_chunk", frozen=True):
    """Blob bytes at ``offset``. An offset that is not where the relay's copy ends is not
    written: the answer says where it ends, and the upload resumes from there."""

    rid: Rid
    blob_id: BlobId
    offset: BlobOffset
    data: Annotated[bytes, msgspec.Meta(max_length=BLOB_FRAME)]


class FetchBlob(Frame, tag="fetch_blob", frozen=True):
    rid: Rid
    blob_id: BlobId
    capability: Key32
    offset: BlobOffset
    length: Annotated[int, msgspec.Meta(ge=1, le=BLOB_FRAME)]


class ReleaseBlob(Frame, tag="release_blob", frozen=True):
    """This account no longer needs the blob (the upload was abandoned, or the message deleted).
    The relay deletes a blob once no account needs it, or an abandoned upload at once."""

    rid: Rid
    blob_id: BlobId
    capability: Key32


class UploadSlot(Frame, tag="upload_slot", frozen=True):
    rid: Rid
    blob_id: BlobId


class BlobProgress(Frame, tag="blob_progress", frozen=True):
    """How many bytes of the blob the relay holds, committed."""

    rid: Rid
    blob_id: BlobId
    received: BlobOffset


class BlobChunk(Frame, tag="blob_chunk", frozen=True):
    rid: Rid
    blob_id: BlobId
    offset: BlobOffset
    data: Annotated[bytes, msgspec.Meta(max_length=BLOB_FRAME)]


ClientFrame = (
    CreateAccount
    | AddDevice
    | Resume
    | PublishKeys
    | PublishDeviceList
    | FetchDeviceList
    | FetchBundles
    | ListDevices
    | OfferPairing
    | PairingSend
    | RejectDevice
    | Send
    | Ack
    | Inspect
    | ChangePassword
    | PublishEpoch
    | FetchEpochs
    | SaveMessages
    | FetchMailbox
    | ListMailboxThreads
    | FetchVaultKey
    | VaultCall
    | DeleteMailboxItems
    | FetchTime
    | StartUpload
    | UploadChunk
    | FetchBlob
    | ReleaseBlob
    | GroupSend
    | RebuildAccount
)
RelayFrame = (
    Challenge
    | Welcome
    | Ok
    | Error
    | Accepted
    | Mismatch
    | DeviceListReply
    | Bundles
    | Devices
    | PairingPush
    | Deliver
    | Notice
    | Inspection
    | Epochs
    | MailboxPage
    | MailboxThreads
    | VaultKey
    | VaultReply
    | RelayTime
    | UploadSlot
    | BlobProgress
    | BlobChunk
    | NotRegistered
)

# What the relay answers to each request when it takes it; any request may instead be answered
# with an ``Error``. ``Send`` is answered with ``Accepted`` once the fan-out is stored, or with a
# ``Mismatch`` naming the devices it got wrong; an ``Ack`` is not answered.
REPLIES: dict[type[Frame], tuple[type[Frame], ...]] = {
    CreateAccount: (Welcome,),
    AddDevice: (Welcome,),
    Resume: (Welcome, NotRegistered),
    PublishKeys: (Ok,),
    PublishDeviceList: (Ok,),
    FetchDeviceList: (DeviceListReply,),
    FetchBundles: (Bundles,),
    ListDevices: (Devices,),
    OfferPairing: (Ok,),
    PairingSend: (Ok,),
    RejectDevice: (Ok,),
    Send: (Accepted, Mismatch),
    Ack: (),
    Inspect: (Inspection,),
    ChangePassword: (Ok,),
    PublishEpoch: (Ok,),
    FetchEpochs: (Epochs,),
    SaveMessages: (Ok,),
    FetchMailbox: (MailboxPage,),
    ListMailboxThreads: (MailboxThreads,),
    FetchVaultKey: (VaultKey,),
    VaultCall: (VaultReply,),
    DeleteMailboxItems: (Ok,),
    FetchTime: (RelayTime,),
    StartUpload: (UploadSlot,),
    UploadChunk: (BlobProgress,),
    FetchBlob: (BlobChunk,),
    ReleaseBlob: (Ok,),
    GroupSend: (Accepted, Mismatch),
    RebuildAccount: (Ok,),
}

_encoder = msgspec.msgpack.Encoder()
_client_decoder: msgspec.msgpack.Decoder[ClientFrame] = msgspec.msgpack.Decoder(ClientFrame)
_relay_decoder: msgspec.msgpack.Decoder[RelayFrame] = msgspec.msgpack.Decoder(RelayFrame)
_T = TypeVar("_T")


def encode(frame: Frame) -> bytes:
    return _encoder.encode(frame)


def _decode(decoder: msgspec.msgpack.Decoder[_T], data: bytes | str) -> _T:
    if isinstance(data, str):
        raise WireError("text frames are not part of the protocol")
    if len(data) > MAX_FRAME_BYTES:
        raise WireError("frame too large")
    return decode_strict(decoder, data, "frame")


def decode_client_frame(data: bytes | str) -> ClientFrame:
    """Decode a frame sent by a device; raises :class:`WireError` on anything but a valid frame."""
    return _decode(_client_decoder, data)


def decode_relay_frame(data: bytes | str) -> RelayFrame:
    return _decode(_relay_decoder, data)
