"""An in-memory stand-in for the relay connection, for unit tests of one client concern.

It implements :class:`client.core.port.RelayPort` and answers each request type from a table the
test fills: a reply frame (its ``rid`` is filled in), an ``Error`` frame, or a function of the
request. It is not a relay: it checks nothing and stores nothing but what it was sent. The
end-to-end tests keep the real relay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import msgspec

from client.core.port import FrameFactory, Offline, ReplyT, checked_reply
from shared import wire

Answer = wire.Frame | Callable[[wire.Frame], wire.Frame]


class FakeRelay:
    def __init__(self, answers: dict[type[wire.Frame], Answer] | None = None) -> None:
        self.answers: dict[type[wire.Frame], Answer] = dict(answers or {})
        self.requests: list[wire.Frame] = []  # every request, in order
        self.sent: list[wire.Frame] = []  # frames without an answer (acknowledgements)
        self.online = asyncio.Event()
        self.online.set()
        self._rid = 0

    def answer(self, request: type[wire.Frame], reply: Answer) -> None:
        self.answers[request] = reply

    def requested(self, kind: type[wire.Frame]) -> list[wire.Frame]:
        return [r for r in self.requests if isinstance(r, kind)]

    async def request(
        self,
        make: FrameFactory,
        expect: type[ReplyT] | tuple[type[ReplyT], ...] = wire.Frame,  # type: ignore[assignment]
    ) -> ReplyT:
        if not self.online.is_set():
            raise Offline()
        self._rid += 1
        frame = make(self._rid)
        self.requests.append(frame)
        answer = self.answers.get(type(frame))
        if answer is None:
            raise AssertionError(f"the fake relay has no answer for {type(frame).__name__}")
        reply = answer(frame) if callable(answer) else answer
        if "rid" in reply.__struct_fields__:
            reply = msgspec.structs.replace(reply, rid=self._rid)
        await asyncio.sleep(0)  # a real request yields to the loop too
        return checked_reply(frame, reply, expect)

    async def send(self, frame: wire.Frame) -> None:
        if self.online.is_set():
            self.sent.append(frame)
