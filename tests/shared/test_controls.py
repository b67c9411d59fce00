"""Control payloads and their rules (shared/controls.py): strict decoding, who may do what, which
setting wins, and the words the timer line uses."""

from __future__ import annotations

import msgspec
import pytest

from shared.controls import (
    ClearConversation,
    ControlRecord,
    DeleteForMe,
    Edit,
    React,
    SetTimer,
    Unsend,
    decode_record,
    encode_record,
    may_change,
    newer,
    timer_line,
)
from shared.envelope import Control, Origin, decode_payload, encode_payload, new_message_id
from shared.errors import WireError

ID = new_message_id()


def test_a_control_round_trips():
    origin = Origin(user="alice", device="a" * 16, counter=3)
    control = Control(
        origin=origin, control_id=new_message_id(), peer="bob", sent_at=1, action=Unsend(target=ID)
    )
    data = encode_payload(control)
    assert decode_payload(data) == control


def test_records_decode_strictly():
    record = ControlRecord(ID, "bob", "alice", "a" * 16, 1, React(target=ID, emoji="👍", seq=1))
    assert decode_record(encode_record(record)) == record
    with pytest.raises(WireError):
        decode_record(msgspec.msgpack.encode([ID, "bob", "alice", "d", 1, {"do": "nuke"}]))
    original = msgspec.msgpack.encode(
        [ID, "bob", "alice", "d", 1, {"do": "edit", "target": ID, "version": 1, "body": "x"}]
    )
    with pytest.raises(WireError):  # an edit is never version 1: that is the original
        decode_record(original)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"do": "timer", "seconds": 60, "seq": 1}, SetTimer)


@pytest.mark.parametrize(
    ("action", "sender", "author", "allowed"),
    [
        (Unsend(target=ID), "alice", "alice", True),
        (Unsend(target=ID), "bob", "alice", False),
        (Edit(target=ID, version=2, body="x"), "bob", "alice", False),
        (Unsend(target=ID), "bob", None, False),
        (DeleteForMe(targets=[ID]), "me", None, True),
        (DeleteForMe(targets=[ID]), "bob", None, False),
        (ClearConversation(through_ts=1), "bob", None, False),
        (React(target=ID, emoji="👍", seq=1), "bob", "alice", True),
    ],
)
def test_who_may(action, sender, author, allowed):
    assert may_change(action, sender, author, "me") is allowed


def test_the_newest_setting_wins_whatever_the_order():
    settings = [(1, "bob", "d1"), (2, "alice", "d2"), (2, "bob", "d0")]
    for order in (settings, settings[::-1]):
        current = None
        for key in order:
            if newer(key, current):
                current = key
        assert current == (2, "bob", "d0")
    assert not newer((2, "bob", "d0"), (2, "bob", "d0"))  # a replay is not newer


def test_timer_lines():
    assert timer_line("alice", 86_400) == "alice set disappearing messages to 24 hours"
    assert timer_line("bob", 300) == "bob set disappearing messages to 5 minutes"
    assert timer_line("bob", 3600) == "bob set disappearing messages to 1 hour"
    assert timer_line("bob", 604_800) == "bob set disappearing messages to 7 days"
    assert timer_line("bob", 0) == "bob turned off disappearing messages"
