"""The sentence the user is shown for each relay misdeed a client check caught."""

from __future__ import annotations

from client.core.events import (
    DeliveryOverdue,
    DeliveryUpdated,
    DeviceListRefused,
    EpochChainRefused,
    MessageStatus,
)
from client.core.relay_alerts import alert_text


def test_each_caught_misdeed_has_its_sentence_and_nothing_else_has_one():
    assert (
        alert_text(DeviceListRefused("bob", "device list rolled back from version 2 to 1"))
        == "bob's device list was rolled back by the relay — not accepted"
    )
    assert "a device bob's account never signed" in alert_text(  # type: ignore[operator]
        DeviceListRefused("bob", "device list signature is invalid")
    )
    assert "does not verify (device list repeats a device)" in alert_text(  # type: ignore[operator]
        DeviceListRefused("bob", "device list repeats a device")
    )
    assert "epochs do not verify (epoch chain is broken or forked)" in alert_text(  # type: ignore[operator]
        EpochChainRefused("epoch chain is broken or forked")
    )
    assert alert_text(DeliveryOverdue(b"\x01" * 16, "bob", 30.0)) == (
        "waiting for delivery: a message to bob has reached none of their devices after 30 s"
        " (offline, or the relay is holding it)"
    )
    assert alert_text(DeliveryUpdated(b"\x01" * 16, "bob", MessageStatus.DELIVERED, 1)) is None
