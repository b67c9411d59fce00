"""The conversation model against an in-memory stand-in for the client's read API.

No relay, no profile, no network: ``FakeHistory`` answers ``messages`` and ``messages_after``
(the two reads :class:`ConversationModel` makes) from a Python list, in the order the profile
database uses (relay time, then id; unsent messages last).
"""

from __future__ import annotations

from typing import Any, cast

from PySide6.QtCore import Qt

from client.core.events import DeliveryUpdated, MessageStatus, StoredMessage
from client.gui.conversation_model import PAGE, WINDOW, ConversationModel, MessageRole

THREAD = "alice"
UNSENT = 2**63 - 1


def _key(m: StoredMessage) -> tuple[int, bytes]:
    return (m.server_ts if m.server_ts is not None else UNSENT, m.message_id)


class FakeHistory:
    """Just the reads the model makes of an AriadneClient, over a list of messages."""

    def __init__(self, messages: list[StoredMessage]) -> None:
        self.stored = list(messages)
        self.calls: list[str] = []

    def _thread(self, thread: str) -> list[StoredMessage]:
        return sorted((m for m in self.stored if m.thread == thread), key=_key)

    def messages(
        self, thread: str, limit: int | None = None, before: tuple[int, bytes] | None = None
    ) -> list[StoredMessage]:
        self.calls.append("messages")
        rows = [m for m in self._thread(thread) if before is None or _key(m) < before]
        return rows[-limit:] if limit is not None else rows

    def messages_after(
        self, thread: str, after: tuple[int, bytes], limit: int
    ) -> list[StoredMessage]:
        self.calls.append("messages_after")
        return [m for m in self._thread(thread) if _key(m) > after][:limit]


def message(
    n: int,
    *,
    thread: str = THREAD,
    status: MessageStatus = MessageStatus.RECEIVED,
    server_ts: int | None = -1,
    body: str | None = None,
) -> StoredMessage:
    return StoredMessage(
        message_id=n.to_bytes(8, "big"),
        thread=thread,
        sender_user="bob",
        sender_device="Laptop",
        sent_at=n,
        server_ts=1_000_000 + n * 1000 if server_ts == -1 else server_ts,
        body=f"message {n}" if body is None else body,
        status=status,
    )


def model_over(count: int, extra: list[StoredMessage] | None = None) -> tuple[Any, FakeHistory]:
    history = FakeHistory([message(n) for n in range(count)] + (extra or []))
    return ConversationModel(cast(Any, history), THREAD), history


def numbers(model: ConversationModel) -> list[int]:
    return [model.message_at(row).sent_at for row in range(model.rowCount())]


def test_opening_shows_only_the_newest_page(qapp):
    model, _ = model_over(1000)
    assert model.rowCount() == PAGE == 100
    assert numbers(model) == list(range(900, 1000))
    assert model.data(model.index(0)) == "message 900"
    assert model.data(model.index(0), MessageRole).sent_at == 900
    assert model.can_fetch_older()
    assert not model.has_newer


def test_a_short_history_is_shown_whole_and_nothing_older_is_asked_for(qapp):
    model, history = model_over(30)
    assert numbers(model) == list(range(30))
    assert not model.can_fetch_older()
    assert history.calls == ["messages"]


def test_scrolling_up_prepends_the_page_before_and_drops_the_newest_beyond_the_window(qtbot):
    model, _ = model_over(1000)
    for page in range(1, 4):
        with qtbot.waitSignal(model.rowsInserted, timeout=1000):
            assert model.fetch_older() == PAGE
        assert numbers(model) == list(range(900 - page * PAGE, 1000))
    assert model.rowCount() == WINDOW == 400
    assert not model.has_newer

    with qtbot.waitSignal(model.rowsRemoved, timeout=1000):
        assert model.fetch_older() == PAGE
    assert model.rowCount() == 400
    assert numbers(model) == list(range(500, 900))  # the newest page (900..999) left
    assert model.has_newer

    for _ in range(5):
        assert model.fetch_older() == PAGE
        assert model.rowCount() == 400
    assert numbers(model) == list(range(0, 400))
    # A full page might have had more before it: one more read finds the top.
    assert model.fetch_older() == 0
    assert not model.can_fetch_older()


def test_scrolling_down_brings_the_dropped_pages_back(qtbot):
    model, _ = model_over(1000)
    while model.can_fetch_older():
        model.fetch_older()
    assert numbers(model) == list(range(0, 400))

    for page in range(1, 7):
        assert model.fetch_newer() == PAGE
        assert model.rowCount() == 400
        assert numbers(model) == list(range(page * PAGE, page * PAGE + 400))
    # The last page was full, so one more read finds the bottom.
    assert model.has_newer and model.fetch_newer() == 0
    assert not model.has_newer
    assert numbers(model) == list(range(600, 1000))
    # The oldest rows were dropped in turn; scrolling up reads them again.
    assert model.can_fetch_older()
    assert model.fetch_older() == PAGE
    assert numbers(model) == list(range(500, 900))


def test_a_new_message_appears_at_the_bottom(qtbot):
    model, history = model_over(150)
    new = message(150, body="hello")
    history.stored.append(new)
    with qtbot.waitSignal(model.rowsInserted, timeout=1000) as inserted:
        model.add(new)
    assert inserted.args[1:] == [100, 100]
    assert model.rowCount() == 101
    assert model.data(model.index(100)) == "hello"
    assert model.row_of(new.message_id) == 100

    model.add(new)  # the same message again (echoed): no second row
    model.add(message(151, thread="carol"))  # another conversation: not here
    assert model.rowCount() == 101


def test_a_new_message_while_scrolled_up_waits_for_the_newer_pages(qtbot):
    model, history = model_over(1000)
    while model.can_fetch_older():
        model.fetch_older()
    new = message(1000, body="latest")
    history.stored.append(new)
    model.add(new)
    assert model.rowCount() == 400 and model.row_of(new.message_id) is None
    while model.has_newer:
        model.fetch_newer()
    assert model.data(model.index(model.rowCount() - 1)) == "latest"


def test_a_delivery_update_changes_the_rows_data(qtbot):
    sending = message(500, status=MessageStatus.SENDING, server_ts=None, body="mine")
    model, _ = model_over(30, [sending])
    row = model.row_of(sending.message_id)
    assert row == 30  # unsent sorts after everything sent
    assert model.data(model.index(row), MessageRole).status is MessageStatus.SENDING

    # The relay accepted it: it gets a relay time (later than all) and stays last.
    accepted = DeliveryUpdated(sending.message_id, THREAD, MessageStatus.SENT, 2_000_000_000)
    model.update(accepted)
    row = model.row_of(sending.message_id)
    assert row == 30
    shown = model.data(model.index(row), MessageRole)
    assert (shown.status, shown.server_ts, shown.body) == (
        MessageStatus.SENT,
        2_000_000_000,
        "mine",
    )

    with qtbot.waitSignal(model.dataChanged, timeout=1000) as changed:
        model.update(DeliveryUpdated(sending.message_id, THREAD, MessageStatus.READ, 2_000_000_000))
    assert changed.args[0].row() == changed.args[1].row() == 30
    assert model.data(model.index(30), MessageRole).status is MessageStatus.READ
    assert model.rowCount() == 31


def test_a_message_given_an_earlier_relay_time_moves_into_place(qtbot):
    sending = message(500, status=MessageStatus.SENDING, server_ts=None)
    model, _ = model_over(10, [sending])
    # Between message 4 (1_004_000) and message 5 (1_005_000).
    model.update(DeliveryUpdated(sending.message_id, THREAD, MessageStatus.SENT, 1_004_500))
    assert numbers(model) == [0, 1, 2, 3, 4, 500, 5, 6, 7, 8, 9]
    assert model.row_of(sending.message_id) == 5
    assert model.row_of(message(9).message_id) == 10


def test_system_lines_and_undecryptable_messages_are_rows_too(qapp):
    system = message(20, status=MessageStatus.SYSTEM, body="bob added a device")
    broken = message(21, status=MessageStatus.UNDECRYPTABLE, body="")
    model, _ = model_over(20, [system, broken])
    assert model.rowCount() == 22
    assert model.data(model.index(20)) == "bob added a device"
    assert model.data(model.index(20), MessageRole).system
    assert model.data(model.index(21)) == "couldn't decrypt this message"
    assert model.data(model.index(21), Qt.ItemDataRole.ToolTipRole) is None
