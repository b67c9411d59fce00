"""Group chats in real windows through a real relay: creating a group by picking members, the
member list, an admin adding and removing a member, and the sender's name above each bubble."""

from __future__ import annotations

import os
import subprocess
import sys

from PySide6.QtCore import Qt

from client.core.events import MessageStatus, StoredMessage
from client.gui.chat_window import ChatWindow
from client.gui.group_panel import MemberPanel, NewGroupDialog, sender_names
from shared.envelope import new_message_id
from tests.gui.test_chat_window import open_window, shown
from tests.gui.test_controls import labels, row_of, trigger
from tests.gui.test_demo_launcher import REPO


def thread_titles(window: ChatWindow) -> list[str]:
    """The names in the conversation list (without the unread count)."""
    return [
        window.threads.item(r).text().split("\n")[0].split("  (")[0]
        for r in range(window.threads.count())
    ]


def member_rows(panel: MemberPanel) -> list[str]:
    return [panel.members.item(r).text() for r in range(panel.members.count())]


def make_group(qtbot, harness, alice_window, name, members) -> str:
    dialog = alice_window.show_new_group()
    assert isinstance(dialog, NewGroupDialog)
    qtbot.keyClicks(dialog.name, name)
    for member in members:
        qtbot.keyClicks(dialog.other, member)
        qtbot.keyClick(dialog.other, Qt.Key.Key_Return)
    assert dialog.chosen() == members
    created = []
    dialog.created.connect(created.append)
    qtbot.mouseClick(dialog.create_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(created), timeout=10_000)
    return created[0]


def test_create_a_group_by_picking_members_and_everyone_sees_it(qtbot, harness):
    alice, bob, carol = (harness.account(n) for n in ("alice", "bob", "carol"))
    windows = [open_window(qtbot, c) for c in (alice, bob, carol)]
    qtbot.waitUntil(lambda: windows[0].connection.text() == "Online", timeout=10_000)
    dialog = windows[0].show_new_group()
    qtbot.mouseClick(dialog.create_button, Qt.MouseButton.LeftButton)
    assert dialog.note.text() == "Give the group a name."  # nothing is sent without a name
    dialog.close()
    thread = make_group(qtbot, harness, windows[0], "Climbing", ["bob", "carol"])
    qtbot.waitUntil(lambda: windows[0].model is not None and windows[0].model.thread == thread)
    assert windows[0].contact_action.text() == "Members…"
    assert not windows[0].server_button.isEnabled()
    for window in windows[1:]:
        qtbot.waitUntil(lambda w=window: "Climbing" in thread_titles(w), timeout=10_000)
    qtbot.keyClicks(windows[0].composer, "Who is in for Saturday?")
    qtbot.keyClick(windows[0].composer, Qt.Key.Key_Return)
    bob_window = windows[1]
    bob_window.threads.setCurrentRow(thread_titles(bob_window).index("Climbing"))
    qtbot.waitUntil(
        lambda: ("alice", "Who is in for Saturday?") in shown(bob_window), timeout=10_000
    )
    # The system line, and the sender's name above the bubble (not above one's own).
    assert any("alice created the group “Climbing”" in body for _, body in shown(bob_window))
    delegate = bob_window.bubbles
    message = next(m for m in bob.messages(thread) if m.body == "Who is in for Saturday?")
    assert delegate.sender_name(message) == "alice"
    own = next(m for m in alice.messages(thread) if m.body == "Who is in for Saturday?")
    assert windows[0].bubbles.sender_name(own) is None


def test_member_list_and_an_admin_adding_and_removing_a_member(qtbot, harness):
    alice, bob, _carol, dave = (harness.account(n) for n in ("alice", "bob", "carol", "dave"))
    alice_window, bob_window, dave_window = (open_window(qtbot, c) for c in (alice, bob, dave))
    qtbot.waitUntil(lambda: alice_window.connection.text() == "Online", timeout=10_000)
    thread = make_group(qtbot, harness, alice_window, "Crew", ["bob", "carol"])
    qtbot.waitUntil(lambda: alice_window.model is not None and alice_window.model.thread == thread)
    panel = alice_window.show_contact()
    assert isinstance(panel, MemberPanel)
    assert member_rows(panel) == ["You  · admin", "bob", "carol"]
    assert panel.admin_tools.isVisible()

    # Each member's safety number, from the list.
    panel.members.setCurrentRow(member_rows(panel).index("bob"))
    safety = panel.show_safety_number()
    assert safety is not None and safety.peer == "bob"
    safety.close()

    # Add dave: every window follows, dave's sees the group.
    qtbot.keyClicks(panel.add_field, "dave")
    qtbot.mouseClick(panel.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "dave" in member_rows(panel), timeout=10_000)
    qtbot.waitUntil(lambda: "Crew" in thread_titles(dave_window), timeout=10_000)

    # bob is not an admin: his panel lists the members but has no admin actions.
    bob_window.threads.setCurrentRow(thread_titles(bob_window).index("Crew"))
    qtbot.waitUntil(lambda: bob.groups.state(thread).members == ("alice", "bob", "carol", "dave"))
    bob_panel = bob_window.show_contact()
    assert not bob_panel.admin_tools.isVisible() and bob_panel.leave_button.isVisible()

    # Remove carol: select her row, click remove; bob's list follows.
    panel.members.setCurrentRow(member_rows(panel).index("carol"))
    assert panel.remove_button.isEnabled()
    qtbot.mouseClick(panel.remove_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "carol" not in member_rows(panel), timeout=10_000)
    qtbot.waitUntil(lambda: "carol" not in member_rows(bob_panel), timeout=10_000)
    qtbot.waitUntil(lambda: any("alice removed carol" in b for _, b in shown(bob_window)))

    # Make bob admin: his panel gains the admin actions.
    panel.members.setCurrentRow(member_rows(panel).index("bob"))
    qtbot.mouseClick(panel.promote_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "bob  · admin" in member_rows(panel), timeout=10_000)
    qtbot.waitUntil(lambda: bob_panel.admin_tools.isVisible(), timeout=10_000)

    # A refusal is shown in words: dave is already a member.
    qtbot.keyClicks(panel.add_field, "dave")
    qtbot.mouseClick(panel.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "did not work" in panel.note.text(), timeout=10_000)
    assert "dave" in panel.add_field.text()  # what was typed is kept


def test_demo_group_opens_alice_bob_and_carol_in_one_group_twice(tmp_path):
    """``ariadne demo --group`` (a real relay process and three windows), run twice: the second
    run reuses the accounts and the group."""
    for _ in range(2):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "client.cli",
                "demo",
                "--group",
                "--data-dir",
                str(tmp_path),
                "--lifetime",
                "2",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        )
        assert result.returncode == 0, result.stderr
        for who in ("alice (Alice's desktop)", "bob (Bob's desktop)", "carol (Carol's desktop)"):
            assert f"window: Ariadne — {who}" in result.stdout
        for user in ("alice", "bob", "carol"):
            assert f"group on {user}'s desktop: Weekend climb (alice, bob, carol)" in result.stdout
        assert "demo: closed cleanly" in result.stdout
        assert "Traceback" not in result.stderr


def test_react_reply_and_unsend_from_the_menu_in_a_group(qtbot, harness):
    """The message menu in a group chat: alice reacts to bob's message, replies to it (the quote
    from each member's own copy) and unsends her own; bob and carol see each."""
    alice, bob, carol = (harness.account(n) for n in ("alice", "bob", "carol"))
    windows = [open_window(qtbot, c) for c in (alice, bob)]
    qtbot.waitUntil(lambda: windows[0].connection.text() == "Online", timeout=10_000)
    thread = make_group(qtbot, harness, windows[0], "Climbing", ["bob", "carol"])
    alice_window, bob_window = windows
    qtbot.waitUntil(lambda: "Climbing" in thread_titles(bob_window), timeout=10_000)
    bob_window.threads.setCurrentRow(thread_titles(bob_window).index("Climbing"))
    qtbot.waitUntil(lambda: bob_window.model.thread == thread, timeout=10_000)
    bob_window.send("Saturday at nine?")
    qtbot.waitUntil(
        lambda: any(m.body == "Saturday at nine?" for m in alice.messages(thread)),
        timeout=10_000,
    )
    qtbot.waitUntil(lambda: alice_window.model.thread == thread, timeout=10_000)
    asked = next(m for m in alice.messages(thread) if m.body == "Saturday at nine?").message_id

    menu = alice_window.message_menu(row_of(alice_window, "Saturday at nine?"))
    assert {"Reply", "React 👍", "Delete for me"} <= set(labels(menu))
    assert "Unsend" not in labels(menu) and "Edit…" not in labels(menu)  # bob's, not hers
    trigger(menu, "React 👍")
    for member in (bob, carol):
        qtbot.waitUntil(
            lambda m=member: m.controls.reactions(asked) == {"alice": "👍"}, timeout=10_000
        )
    trigger(alice_window.message_menu(row_of(alice_window, "Saturday at nine?")), "Reply")
    alice_window.send("Nine is fine")
    qtbot.waitUntil(
        lambda: any(m.body == "Nine is fine" for m in carol.messages(thread)), timeout=10_000
    )
    reply = next(m for m in carol.messages(thread) if m.body == "Nine is fine").message_id
    assert carol.controls.quote(reply)[1:] == ("bob", "Saturday at nine?")
    assert bob.controls.quote(reply)[1:] == ("bob", "Saturday at nine?")

    trigger(alice_window.message_menu(row_of(alice_window, "Nine is fine")), "Unsend")
    for member in (bob, carol):
        qtbot.waitUntil(
            lambda m=member: m.message(reply).status is MessageStatus.UNSENT, timeout=10_000
        )
    row = bob_window.model.row_of(reply)
    qtbot.waitUntil(
        lambda: (
            bob_window.bubbles._lines(bob_window.model.message_at(row))[0]
            == "alice unsent a message"
        ),
        timeout=10_000,
    )


def test_a_group_window_laid_out_after_its_device_closed_names_senders_by_username(harness):
    """A style change reaches every window still alive, also one whose device has closed (its
    profile database with it): the name above a bubble is then the sender's username."""
    alice = harness.account("alice")
    harness.account("bob")
    alice.conversations.set_display_name("bob", "Bob Okafor")
    name = sender_names(alice)
    message = StoredMessage(
        message_id=new_message_id(),
        thread="#group",
        sender_user="bob",
        sender_device="0" * 16,
        sent_at=1,
        server_ts=None,
        body="hi",
        status=MessageStatus.RECEIVED,
    )
    assert name(message) == "Bob Okafor"
    harness.run(alice.close())
    assert name(message) == "bob"
