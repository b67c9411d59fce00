"""Every decode in ``shared`` fails the same way: one protocol error naming what was decoded,
whether the input is not MessagePack, has the wrong shape, or holds invalid UTF-8."""

from __future__ import annotations

import msgspec
import pytest

from shared import device_list, envelope, pairing, wire
from shared.codec import decode_strict
from shared.errors import DecryptionError, WireError
from shared.padding import pad
from shared.session import Session

NOT_MSGPACK = b"\xc1"  # a byte MessagePack never uses
BAD_UTF8 = b"\xa2\xff\xfe"  # a 2-byte str that is not UTF-8
WRONG_SHAPE = msgspec.msgpack.encode({"t": "nothing_like_this"})

_str_decoder = msgspec.msgpack.Decoder(str)


@pytest.mark.parametrize("data", [NOT_MSGPACK, BAD_UTF8, WRONG_SHAPE])
def test_bad_input_is_one_error_naming_what_was_decoded(data):
    with pytest.raises(WireError, match=r"^malformed greeting: "):
        decode_strict(msgspec.msgpack.Decoder(int), data, "greeting")


def test_the_caller_chooses_the_error():
    with pytest.raises(DecryptionError, match=r"^malformed grant: "):
        decode_strict(_str_decoder, BAD_UTF8, "grant", DecryptionError)
    assert decode_strict(_str_decoder, msgspec.msgpack.encode("ok"), "greeting") == "ok"


@pytest.mark.parametrize(
    "decode",
    [
        wire.decode_relay_frame,
        wire.decode_client_frame,
        pairing.decode,
        envelope.decode_sealed,
        lambda data: envelope.decode_payload(pad(data)),
        lambda data: device_list.open_device_list(data, "alice", None),
        Session.load,
    ],
)
@pytest.mark.parametrize("data", [NOT_MSGPACK, BAD_UTF8, WRONG_SHAPE])
def test_every_shared_decoder_raises_a_wire_error(decode, data):
    with pytest.raises(WireError):
        decode(data)
