"""The relay's health and readiness endpoints and its counters, for a load balancer and an
operator; none carries anything a device sent.

Plain HTTP on the websocket port (answered before the websocket handshake, websockets'
``process_request``): ``GET /healthz`` is 200 while the process serves; ``GET /readyz`` is 200
when the store answers (with a shared store: the database is reachable) and 503 otherwise, so a
load balancer sends new devices to another node; ``GET /counters`` is the counters as JSON.

The counters (connections logged in, envelopes queued and delivered, error answers) are also
logged every ``COUNTER_LOG_SECONDS`` as one JSON line (logger ``ariadne.relay.counters``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import asdict, dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

if TYPE_CHECKING:
    from relay.server import Relay

log = logging.getLogger("ariadne.relay.counters")

COUNTER_LOG_SECONDS = 60.0


@dataclass
class Counters:
    connections: int = 0  # logins accepted since start
    queued: int = 0  # envelopes committed to a device's queue
    delivered: int = 0  # envelopes sent to their device
    errors: int = 0  # error answers sent


def snapshot(relay: Relay) -> dict[str, int | bool]:
    return {
        **asdict(relay.counters),
        "connected": len(relay.connections),
        "ready": relay.ready,
    }


def _response(status: HTTPStatus, body: str, content_type: str = "text/plain") -> Response:
    data = body.encode()
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(data))),
            ("Connection", "close"),
        ]
    )
    return Response(status.value, status.phrase, headers, data)


def answer_http(relay: Relay, request: Request) -> Response | None:
    """A plain HTTP request to one of the endpoints gets its answer; anything else goes on to
    the websocket handshake."""
    if request.path == "/healthz":
        return _response(HTTPStatus.OK, "ok\n")
    if request.path == "/readyz":
        if relay.ready:
            return _response(HTTPStatus.OK, "ready\n")
        return _response(HTTPStatus.SERVICE_UNAVAILABLE, "database unavailable\n")
    if request.path == "/counters":
        return _response(HTTPStatus.OK, json.dumps(snapshot(relay)), "application/json")
    return None


def log_counters(relay: Relay, every: float = COUNTER_LOG_SECONDS) -> asyncio.Task[None]:
    """Log the counters as one JSON line every ``every`` seconds while the relay runs."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(every)
            log.info(json.dumps({"event": "counters", **snapshot(relay)}))

    task = asyncio.create_task(loop())
    relay.background.add(task)
    return task
