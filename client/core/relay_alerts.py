"""What the user is told when the relay is caught misbehaving, in words, from the core's events.

The checks themselves live where they are made (the directory refuses a list, the epoch book a
chain, the delivery watch sees a message wait); this module only turns their events into the
sentence a banner or a narration shows, so the GUI and the terminal demo say the same thing.
"""

from __future__ import annotations

from client.core.events import DeliveryOverdue, DeviceListRefused, EpochChainRefused, Event


def alert_text(event: Event) -> str | None:
    """The sentence for an event that reports the relay's doing, or None for any other event."""
    match event:
        case DeviceListRefused(username=user, reason=reason) if "rolled back" in reason:
            return f"{user}'s device list was rolled back by the relay — not accepted"
        case DeviceListRefused(username=user, reason=reason) if "signature" in reason:
            return (
                f"the relay changed {user}'s device list (a device {user}'s account never"
                " signed) — not accepted"
            )
        case DeviceListRefused(username=user, reason=reason):
            return f"the relay served a device list for {user} that does not verify ({reason})"
        case EpochChainRefused(reason=reason):
            return f"the relay's history epochs do not verify ({reason}) — not accepted"
        case DeliveryOverdue(thread=thread, seconds=seconds):
            return (
                f"waiting for delivery: a message to {thread} has reached none of their devices"
                f" after {seconds:.0f} s (offline, or the relay is holding it)"
            )
    return None
