"""How the window writes times: a message's time of day in its bubble and the conversation list,
the day above it, and the full date and time to the second, with the zone (hovering a message,
its Info). A message is placed by the relay's time once it has one, else by when it was written."""

from __future__ import annotations

import time

from client.core.events import StoredMessage

FULL = "%A %d %B %Y, %H:%M:%S %Z"


def full_time(micros_or_millis: int, micros: bool = False) -> str:
    """A date and time to the second, with the zone."""
    seconds = micros_or_millis / (1_000_000 if micros else 1000)
    return time.strftime(FULL, time.localtime(seconds))


def _local(message: StoredMessage) -> time.struct_time:
    millis = message.server_ts // 1000 if message.server_ts else message.sent_at
    return time.localtime(millis / 1000)


def message_time(message: StoredMessage) -> str:
    """The message's date and time to the second, with the zone."""
    return time.strftime(FULL, _local(message))


def clock(message: StoredMessage) -> str:
    return time.strftime("%H:%M", _local(message))


def day(message: StoredMessage) -> str:
    stamp = _local(message)
    if stamp[:3] == time.localtime()[:3]:
        return "Today"
    return time.strftime("%A %d %B %Y", stamp)


def date_of(message: StoredMessage) -> tuple[int, int, int]:
    return tuple(_local(message)[:3])  # type: ignore[return-value]
