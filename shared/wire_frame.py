"""What every frame between a device and the relay is: a tagged, versioned msgspec Struct within
MAX_FRAME_BYTES, a request id ``rid`` that the answer repeats, and the two answers any area gives,
``Ok`` and ``Error`` (with its ``ErrorCode``). The areas' frames build on these and
:mod:`shared.wire` gathers them; keeping the base apart lets each area import it without
importing the others.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal

import msgspec

__all__ = [
    "MAX_FRAME_BYTES",
    "MAX_PAYLOAD_BYTES",
    "MAX_RETRY_AFTER",
    "PROTOCOL_VERSION",
    "Error",
    "ErrorCode",
    "Frame",
    "Ok",
    "Rid",
    "SealedPayload",
    "Seq",
]


PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 512 * 1024
MAX_RETRY_AFTER = 24 * 3600.0
MAX_PAYLOAD_BYTES = 64 * 1024
Rid = Annotated[int, msgspec.Meta(ge=0, lt=2**53)]
Seq = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
SealedPayload = Annotated[bytes, msgspec.Meta(min_length=1, max_length=MAX_PAYLOAD_BYTES)]


class Frame(msgspec.Struct, tag_field="t", forbid_unknown_fields=True, kw_only=True, frozen=True):
    v: Literal[1] = 1


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
