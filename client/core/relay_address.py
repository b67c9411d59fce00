"""The relay's address as a user types it: checked before anything is made, and probed, so a
typo or a relay that is not running is said in a sentence at once (not after half a minute of
"Connecting…" and a profile half made)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import websockets
from websockets.asyncio.client import connect

DEFAULT_RELAY_URL = "ws://127.0.0.1:8765"  # where ``ariadne-relay`` listens unless told otherwise
PROBE_TIMEOUT = 2.0  # a relay that neither answers nor refuses within this is reported

HOW_TO_START = (
    "Start one with `ariadne demo` (a relay and two test accounts) or `ariadne-relay`, or ask "
    "whoever runs yours for its address."
)


class RelayAddressError(ValueError):
    """The address cannot be a relay, or nothing answers there; the message says so."""


def check_relay_url(text: str) -> str:
    """``text`` as a relay URL (``ws://host:port``, ``wss://…``) or :class:`RelayAddressError`."""
    url = text.strip()
    if not url:
        raise RelayAddressError(f"Enter the relay's address, e.g. {DEFAULT_RELAY_URL}.")
    parts = urlsplit(url if "://" in url else f"//{url}")
    if parts.scheme not in ("ws", "wss"):
        raise RelayAddressError(
            f"A relay address starts with ws:// or wss://, e.g. {DEFAULT_RELAY_URL}."
        )
    try:
        port = parts.port
    except ValueError:
        port = -1
    if not parts.hostname or port == -1 or port == 0:
        raise RelayAddressError(
            f"“{url}” is not a relay address: it needs a host and, if any, a port from 1 to "
            f"65535, e.g. {DEFAULT_RELAY_URL}."
        )
    return url


async def probe(url: str, timeout: float = PROBE_TIMEOUT) -> None:
    """Raise :class:`RelayAddressError` unless a websocket server accepts a connection at
    ``url`` within ``timeout`` (refused at once, unknown host, silent, or not a websocket)."""
    try:
        async with asyncio.timeout(timeout):
            async with connect(url, compression=None, open_timeout=None):
                pass
    except ConnectionRefusedError:
        raise RelayAddressError(
            f"No relay is running at {url} (the connection was refused). {HOW_TO_START}"
        ) from None
    except TimeoutError:
        raise RelayAddressError(
            f"The relay at {url} did not answer within {timeout:.0f} s. {HOW_TO_START}"
        ) from None
    except OSError as exc:
        raise RelayAddressError(
            f"The relay at {url} cannot be reached ({exc.strerror or exc}). {HOW_TO_START}"
        ) from None
    except websockets.WebSocketException:
        raise RelayAddressError(
            f"Something answers at {url}, but it is not an Ariadne relay. {HOW_TO_START}"
        ) from None
