"""The wire's error codes and request/reply map: complete, and tolerant of a newer relay."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import msgspec
import pytest

from shared import wire

ROOT = Path(__file__).resolve().parents[2]


def _error(code: str) -> bytes:
    return msgspec.msgpack.encode(
        {"t": "error", "v": 1, "rid": 7, "code": code, "detail": "from a newer relay"}
    )


def _sources(package: str) -> str:
    return "\n".join(p.read_text() for p in sorted((ROOT / package).rglob("*.py")))


def test_every_code_the_relay_sends_is_an_error_code():
    text = _sources("relay")
    sent = set(re.findall(r'(?:Reject|Refus\w*)\(\s*"([a-z_]+)"', text))
    sent |= set(re.findall(r'code\s*=\s*"([a-z_]+)"', text))
    # Codes named as members (ErrorCode.QUEUE_FULL) are checked by Python itself; counted here
    # only so that a renamed refusal cannot make this test pass on nothing.
    named = set(re.findall(r"ErrorCode\.([A-Z_]+)", text))
    assert len(sent | named) > 20, "found no refusals in relay/: has the refusal been renamed?"
    known = {code.value for code in wire.ErrorCode}
    assert sent - known == set()


def test_every_code_the_client_matches_is_an_error_code():
    """The client matches codes as ``wire.ErrorCode`` members; a code matched as text, or a
    member name the enum does not have, fails here rather than never matching."""
    text = _sources("client/core")
    as_text = set(re.findall(r'code\s*(?:[!=]=|in)\s*"([a-z_]+)"', text))
    members = set(re.findall(r"ErrorCode\.([A-Z_]+)\b", text))
    assert members, "found no matched codes in client/core"
    from client.core.link import FATAL_LOGIN_ERRORS

    assert members - set(wire.ErrorCode.__members__) == set()
    assert as_text - {code.value for code in wire.ErrorCode} == set()
    assert all(isinstance(code, wire.ErrorCode) for code in FATAL_LOGIN_ERRORS)


def test_a_known_code_decodes_as_its_member_and_compares_as_text():
    frame = wire.decode_relay_frame(_error("queue_full"))
    assert isinstance(frame, wire.Error)
    assert frame.code is wire.ErrorCode.QUEUE_FULL
    assert frame.code == "queue_full"


def test_an_unknown_code_from_a_newer_relay_is_a_refusal_not_a_malformed_frame():
    frame = wire.decode_relay_frame(_error("quota_exhausted_v2"))
    assert isinstance(frame, wire.Error)
    assert frame.code is wire.ErrorCode.UNKNOWN
    assert (frame.rid, frame.detail) == (7, "from a newer relay")


@pytest.mark.parametrize("bad", [5, None, b"busy", ["busy"]])
def test_a_code_that_is_not_text_is_a_wire_error(bad):
    with pytest.raises(wire.WireError):
        wire.decode_relay_frame(msgspec.msgpack.encode({"t": "error", "rid": 1, "code": bad}))


def test_an_error_code_round_trips():
    for code in wire.ErrorCode:
        frame = wire.Error(rid=1, code=code)
        assert wire.decode_relay_frame(wire.encode(frame)) == frame


def test_every_request_has_its_replies_listed():
    requests = set(typing.get_args(wire.ClientFrame))
    assert set(wire.REPLIES) == requests


def test_every_listed_reply_is_a_relay_frame_with_the_request_id():
    replies = set(typing.get_args(wire.RelayFrame))
    for request, answers in wire.REPLIES.items():
        assert set(answers) <= replies, request
        for answer in answers:
            assert "rid" in answer.__struct_fields__, answer
    assert wire.Error in replies


def test_protocol_md_lists_every_request_and_every_error_code():
    text = (ROOT / "shared" / "PROTOCOL.md").read_text()
    for request in wire.REPLIES:
        assert f"| `{request.__name__}` (`{request.__struct_config__.tag}`) |" in text, request
    for code in wire.ErrorCode:
        assert f"| `{code.value}` |" in text, code
