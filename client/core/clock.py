"""The relay's clock, as this device reads it: its own clock plus an offset measured against the
relay at every login (PROTOCOL.md §10 "Whose clock decides").

Disappearing messages expire by this clock on every device, so two devices whose own clocks
disagree by an hour still delete a message at the same moment; the offset is kept in the profile,
so a device that starts offline deletes what expired while it was closed before showing anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def system_ms() -> int:
    return time.time_ns() // 1_000_000


class RelayClock:
    def __init__(self, local_ms: Callable[[], int] | None = None, offset_ms: int = 0) -> None:
        self._local_ms = local_ms  # this device's own clock, if not the system's
        self.offset_ms = offset_ms  # relay − local

    def local_ms(self) -> int:
        return self._local_ms() if self._local_ms is not None else system_ms()

    def set_local(self, local_ms: Callable[[], int]) -> None:
        """Read this device's own clock from ``local_ms`` (a device whose clock is wrong)."""
        self._local_ms = local_ms

    def now_ms(self) -> int:
        return self.local_ms() + self.offset_ms

    def observe(self, relay_us: int, asked_ms: int, answered_ms: int) -> int:
        """Take the relay's time ``relay_us`` read between ``asked_ms`` and ``answered_ms`` (local
        clock) as the relay's clock at the midpoint; returns the new offset."""
        self.offset_ms = relay_us // 1000 - (asked_ms + answered_ms) // 2
        return self.offset_ms
