"""How the desktop client stops: its windows closing, or Ctrl+C / SIGTERM in the terminal.

Under qasync, Python sees a signal only when Qt hands control back; its default SIGINT handler
then raises ``KeyboardInterrupt`` in whatever callback runs (a traceback, windows left open) and
SIGTERM kills the process outright (the relay child of ``ariadne demo`` is orphaned). So the
signals are taken by the event loop (``loop.add_signal_handler``: the signal wakes Qt through
asyncio's self-pipe) before anything else runs:

- the first one asks the application to stop: every top-level window closes, and the main
  coroutine (``until_closed``) returns, so each device and the relay close as on a normal exit;
- a second one means "now": the main coroutine is cancelled (its ``finally`` blocks still stop
  the relay child), and the default handler is back for a third.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import weakref
from collections.abc import Awaitable, Callable, Sequence

from PySide6.QtWidgets import QApplication, QMainWindow

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# One stop request per event loop (the tests run several loops in one process).
_requests: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Event] = (
    weakref.WeakKeyDictionary()
)


def stop_requested() -> asyncio.Event:
    """Set once the user asked the whole application to stop (a signal)."""
    loop = asyncio.get_running_loop()
    event = _requests.get(loop)
    if event is None:
        event = _requests[loop] = asyncio.Event()
    return event


def close_all_windows() -> None:
    app = QApplication.instance()
    if isinstance(app, QApplication):
        for widget in app.topLevelWidgets():
            if widget.isVisible():
                widget.close()


class SignalStop:
    """The loop's SIGINT and SIGTERM handlers for one run of ``main``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, main: asyncio.Future[int]) -> None:
        self.loop = loop
        self.main = main
        self.received: list[signal.Signals] = []

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            self.loop.add_signal_handler(sig, self._on_signal, sig)

    def remove(self) -> None:
        for sig in STOP_SIGNALS:
            self.loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        self.received.append(sig)
        if len(self.received) == 1:
            print(f"ariadne: {sig.name}: closing", file=sys.stderr, flush=True)
            stop_requested().set()
            close_all_windows()
        else:
            print(f"ariadne: {sig.name} again: stopping now", file=sys.stderr, flush=True)
            self.remove()  # a third signal gets the default behaviour
            self.main.cancel()

    @property
    def exit_code(self) -> int:
        """What a shell expects of a process a signal stopped early: 128 + the signal."""
        return 128 + int(self.received[-1]) if self.received else 1


def run_with_signals(loop: asyncio.AbstractEventLoop, main: Callable[[], Awaitable[int]]) -> int:
    """Run ``main`` on ``loop`` with the stop signals handled; its result is the exit code (a
    second signal cuts it short with 128 + the signal)."""
    task: asyncio.Future[int] = asyncio.ensure_future(main(), loop=loop)
    stop = SignalStop(loop, task)
    stop.install()
    try:
        return loop.run_until_complete(task)
    except asyncio.CancelledError:
        return stop.exit_code
    finally:
        if len(stop.received) < 2:
            stop.remove()


async def until_closed(
    windows: Sequence[QMainWindow],
    lifetime: float | None = None,
    on_closed: Callable[[QMainWindow], None] | None = None,
) -> None:
    """Wait until every window in ``windows`` is closed (``on_closed`` hears of each as it
    closes, to stop its device at once), the application is asked to stop, or ``lifetime``
    seconds passed; then close what is still open."""
    done = asyncio.Event()
    open_windows = set(windows)
    stop = stop_requested()

    def closed(window: QMainWindow) -> None:
        if window in open_windows:
            open_windows.discard(window)
            if on_closed is not None:
                on_closed(window)
        if not open_windows:
            done.set()

    for window in windows:
        window.closed.connect(lambda w=window: closed(w))  # type: ignore[attr-defined]
    if lifetime is not None:
        asyncio.get_running_loop().call_later(lifetime, done.set)
    waiters = [asyncio.ensure_future(done.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    for window in list(open_windows):
        window.close()
