"""An error's ``retry_after`` is shown to the user: the decoder takes only a sane number."""

from __future__ import annotations

import msgspec
import pytest

from shared import wire


def _error(retry_after: object) -> bytes:
    return msgspec.msgpack.encode(
        {"t": "error", "v": 1, "rid": 1, "code": "login_throttled", "retry_after": retry_after}
    )


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, wire.MAX_RETRY_AFTER + 1, "5"])
def test_an_unshowable_retry_after_is_a_wire_error(bad):
    with pytest.raises(wire.WireError):
        wire.decode_relay_frame(_error(bad))


def test_a_retry_after_in_range_and_none_decode():
    assert wire.decode_relay_frame(_error(2.5)) == wire.Error(
        rid=1, code="login_throttled", retry_after=2.5
    )
    assert wire.decode_relay_frame(_error(None)).retry_after is None
