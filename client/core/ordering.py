"""Each sending device's own order within a conversation.

A conversation is ordered by the relay's timestamps: the only clock that every device sees the
same. The relay could rewrite them, so every payload also carries its sending device's counter
(``shared.envelope.Origin``), authenticated by the session. The relay's times for one sending
device's messages in one conversation must go up with that device's counters. When a message's
time contradicts the messages already placed (an earlier counter later in time, or a later
counter earlier), the contradicting messages and the new one swap times: the same set of times,
dealt out again in counter order. The conversation then shows the sender's order, other senders'
messages keep their places, and the caller reports the contradiction.

Messages of one device arrive mostly in order, so the usual cost is one index lookup that finds
the nearest neighbour in order; only a contradiction reads further.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass, field

from client.core.storage import ProfileStore


@dataclass(frozen=True)
class Placement:
    """Where a message goes: its time, and the messages of the same device that moved for it."""

    server_ts: int
    moved: list[tuple[bytes, int]] = field(default_factory=list)

    @property
    def contradicted(self) -> bool:
        return bool(self.moved)


def place(
    store: ProfileStore,
    thread: str,
    sender_user: str,
    sender_device: str,
    message_id: bytes,
    counter: int,
    server_ts: int,
) -> Placement:
    """Place a message (already recorded in ``sender_order``) at ``server_ts``, or at the time
    its sender's order gives it; moved messages are updated in the store (caller's transaction).

    Invariant, per (thread, sender device): times go strictly up as counters go up. So the
    messages that contradict the new one are a run next to it in counter order, on one side
    only, and reading stops at the first message that does not contradict."""
    run: list[tuple[int, bytes, int]] = []
    for later in (False, True):
        with closing(
            store.sender_neighbours(thread, sender_user, sender_device, counter, later)
        ) as neighbours:
            for neighbour in neighbours:
                # A tie contradicts too: within one time the conversation is in message id
                # order, which is not the sender's when two ids share a millisecond.
                if (neighbour[2] <= server_ts) if later else (neighbour[2] >= server_ts):
                    run.append(neighbour)
                else:
                    break
        if run:
            break
    if not run:
        return Placement(server_ts)
    run.append((counter, message_id, server_ts))
    times = sorted(ts for _, _, ts in run)
    for i in range(1, len(times)):  # a relay may give two of them one time: one goes 1 µs on
        times[i] = max(times[i], times[i - 1] + 1)
    placed = server_ts
    moved = []
    for (_, moved_id, old), new in zip(sorted(run), times, strict=True):
        if moved_id == message_id:
            placed = new
        elif new != old:
            store.set_server_ts(moved_id, new)
            moved.append((moved_id, new))
    store.set_server_ts(message_id, placed)
    # A time moved on may reach the device's next messages (tied or 1 µs apart): they move on.
    last = times[-1]
    reached: list[bytes] = []
    with closing(
        store.sender_neighbours(thread, sender_user, sender_device, max(run)[0], True)
    ) as neighbours:
        for _, next_id, ts in neighbours:
            if ts > last + len(reached):
                break
            reached.append(next_id)
    for step, next_id in enumerate(reached, start=1):
        store.set_server_ts(next_id, last + step)
        moved.append((next_id, last + step))
    return Placement(placed, moved)
