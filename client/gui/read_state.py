"""Which unread messages the user has seen: those scrolled into view, and those above them
(scrolled past), as a reading position in Signal or Element moves.

The window asks this only while it is the active window with the conversation open (see
``ChatWindow._mark_read``). A message counts once half of it, or half the view if it is taller,
has been inside the view; everything above the lowest such message counts too. Messages below it
stay unread until the user scrolls down to them.
"""

from __future__ import annotations

from PySide6.QtWidgets import QListView

from client.gui.conversation_model import ConversationModel


def visible_unread(view: QListView, model: ConversationModel, unread: list[bytes]) -> set[bytes]:
    viewport = view.viewport().rect()
    if viewport.height() <= 0 or not unread:
        return set()
    lowest = view.indexAt(viewport.bottomLeft()).row()
    if lowest < 0:  # the view ends above its bottom edge: the last row is the lowest
        lowest = model.rowCount() - 1
    rect = view.visualRect(model.index(lowest))
    shown = rect.intersected(viewport).height()
    if rect.height() > 0 and shown * 2 < min(rect.height(), viewport.height()):
        lowest -= 1  # its lesser part shows: not seen yet
    seen = set()
    for message_id in unread:
        row = model.row_of(message_id)
        if row is not None and row <= lowest:
            seen.add(message_id)
    return seen
