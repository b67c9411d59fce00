"""The relay operator's commands and the relay's reports, for the hostile-relay demo.

A relay started with ``--attack-layer`` misbehaves on cue: the process that started it writes one
:class:`OperatorCommand` per line to the relay's standard input and reads one
:class:`OperatorReport` per line from its standard output (JSON). Only that process holds the
pipe, so nothing on the network can reach these commands; a relay started without the flag never
reads its standard input. The demo and its tests use this; a normal relay has no attack code
path switched on (PROTOCOL.md §9).

Pure types only: the relay's attack layer (``relay.attacks``) and the demo (``client.hostile``)
both speak them, and neither imports the other.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from shared.device_list import Username

# Each attack the relay can be told to make. "release" gives back what "withhold" held, "stop"
# disarms everything (and releases what is held).
Attack = Literal[
    "read",
    "flip",
    "replay",
    "relabel",
    "ghost",
    "rollback",
    "hide_epoch",
    "pairing",
    "withhold",
    "reorder",
    "release",
    "stop",
]

# Where an attack stands: armed (it waits for the traffic it acts on), done (it acted; ``detail``
# says what it did), refused (it cannot act, e.g. no older list to roll back to).
Stage = Literal["armed", "done", "refused"]


class OperatorCommand(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``victim``: the user whose messages, device list, epochs or pairing the attack targets
    (messages *to* the victim); ``sender``: whose messages to the victim it takes (delivery
    attacks); ``as_user``: the name a relabelled message is given."""

    attack: Attack
    victim: Username
    sender: Username | None = None
    as_user: Username | None = None


class OperatorReport(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the relay did about a command. ``ciphertext``: for "read", the bytes it holds."""

    attack: Attack
    stage: Stage
    detail: str
    ciphertext: bytes = b""


_command_decoder = msgspec.json.Decoder(OperatorCommand)
_report_decoder = msgspec.json.Decoder(OperatorReport)


def encode(message: OperatorCommand | OperatorReport) -> bytes:
    """One line of JSON (the line break included)."""
    return msgspec.json.encode(message) + b"\n"


def decode_command(line: bytes) -> OperatorCommand:
    return _command_decoder.decode(line)


def decode_report(line: bytes) -> OperatorReport:
    return _report_decoder.decode(line)
