"""The ten attacks of the hostile-relay demo, and what the clients do about each.

Each :class:`Attack` tells the relay (through its operator pipe) to misbehave, makes the clients
do what the attack needs (Alice writes, a new device of Bob's asks to be approved or restores),
and waits for what the clients show. It returns an :class:`Outcome`: what the relay tried, what
each client showed, and whether the clients caught it. The checks that catch each attack are the
clients' own (``client.core``); nothing here decides for them, it only looks at what they show.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from client.core.client import AriadneClient
from client.core.events import (
    DecryptionFailed,
    DeliveryOverdue,
    DeviceListRefused,
    Event,
    MessageStatus,
    OutOfOrderDelivery,
    PairingCodeShown,
)
from client.core.port import RelayError
from client.core.relay_alerts import alert_text
from client.hostile import Cast, OperatorLink, attacking_relay, until
from shared.errors import VerificationError
from shared.operator import OperatorReport

UNDECRYPTABLE = "couldn't decrypt this message"


@dataclass(frozen=True)
class Outcome:
    tried: str  # what the relay did, in its own report
    answers: tuple[tuple[str, str], ...]  # (who, what they showed)
    caught: bool


@dataclass(frozen=True)
class Attack:
    key: str
    title: str
    explanation: str  # one line, for the operator's button
    run: Callable[[Cast, OperatorLink], Awaitable[Outcome]]


def _tried(report: OperatorReport | None, armed: OperatorReport) -> str:
    if report is None:
        return f"{armed.detail} (it never got the chance)"
    return report.detail


def _readable(client: AriadneClient) -> list[str]:
    return [
        m.body
        for thread in client.threads()
        for m in client.messages(thread)
        if m.status in (MessageStatus.RECEIVED, MessageStatus.READ)
    ]


def _first(events: list[Event], since: int, kind: type, **fields: object) -> Event | None:
    for event in events[since:]:
        if isinstance(event, kind) and all(getattr(event, k) == v for k, v in fields.items()):
            return event
    return None


async def _event(
    cast: Cast, client: AriadneClient, since: int, kind: type, **fields: object
) -> Event | None:
    seen = cast.seen(client)
    await until(lambda: _first(seen, since, kind, **fields) is not None)
    return _first(seen, since, kind, **fields)


async def read(cast: Cast, op: OperatorLink) -> Outcome:
    text = "Meet me at the north gate at noon."
    armed = await op.command("read", "bob", sender="alice")
    await cast.alice.send_text("bob", text)
    report = await op.report("read")
    arrived = await until(lambda: text in _readable(cast.bob))
    held = report.ciphertext if report else b""
    caught = report is not None and arrived and text.encode() not in held
    return Outcome(
        _tried(report, armed) + (f": {held[:12].hex()}…" if held else ""),
        (
            ("relay", f"holds {len(held)} bytes of ciphertext; the words are not in them"),
            ("bob", f"reads {text!r}: only his device could decrypt it" if arrived else "—"),
        ),
        caught,
    )


async def flip(cast: Cast, op: OperatorLink) -> Outcome:
    text = "Please send the 100 to account 4411."
    since = len(cast.seen(cast.bob))
    armed = await op.command("flip", "bob", sender="alice")
    await cast.alice.send_text("bob", text)
    report = await op.report("flip")
    failed = await _event(cast, cast.bob, since, DecryptionFailed, sender_user="alice")
    after = "The next message still arrives."
    await cast.alice.send_text("bob", after)
    recovered = await until(lambda: after in _readable(cast.bob))
    caught = failed is not None and text not in _readable(cast.bob)
    return Outcome(
        _tried(report, armed),
        (
            (
                "bob",
                f"{UNDECRYPTABLE!r} ({failed.reason}) — and the next one reads fine"  # type: ignore[attr-defined]
                if failed and recovered
                else (UNDECRYPTABLE if failed else "showed nothing"),
            ),
        ),
        caught,
    )


async def replay(cast: Cast, op: OperatorLink) -> Outcome:
    text = "Pay the invoice (once)."
    armed = await op.command("replay", "bob", sender="alice")
    before = len([m for m in cast.bob.messages("alice") if m.undecryptable])
    await cast.alice.send_text("bob", text)
    report = await op.report("replay")
    await until(lambda: text in _readable(cast.bob))
    shown = _readable(cast.bob).count(text)
    failures = len([m for m in cast.bob.messages("alice") if m.undecryptable]) - before
    caught = report is not None and shown == 1 and failures == 0
    return Outcome(
        _tried(report, armed),
        (
            (
                "bob",
                "shows it once: the replayed copy was recognised and dropped"
                if shown == 1
                else f"shows it {shown} times",
            ),
        ),
        caught,
    )


async def relabel(cast: Cast, op: OperatorLink) -> Outcome:
    text = "I owe you 50, Bob."
    since = len(cast.seen(cast.bob))
    armed = await op.command("relabel", "bob", sender="alice", as_user="mallory")
    await cast.alice.send_text("bob", text)
    report = await op.report("relabel")
    failed = await _event(cast, cast.bob, since, DecryptionFailed, sender_user="mallory")
    caught = failed is not None and text not in _readable(cast.bob)
    return Outcome(
        _tried(report, armed),
        (
            (
                "bob",
                f"{UNDECRYPTABLE!r} from 'mallory': {failed.reason}"
                if failed  # type: ignore[attr-defined]
                else "showed nothing",
            ),
        ),
        caught,
    )


async def _list_attack(cast: Cast, op: OperatorLink, attack: str, must_say: str) -> Outcome:
    since = len(cast.seen(cast.alice))
    before = cast.alice.directory.known("bob")
    armed = await op.command(attack, "bob")  # type: ignore[arg-type]
    if armed.stage == "refused":
        return Outcome(armed.detail, (), False)
    report = await op.report(attack)  # type: ignore[arg-type]
    refused = await _event(cast, cast.alice, since, DeviceListRefused, username="bob")
    after = cast.alice.directory.known("bob")
    kept = before is not None and after is not None and after.version == before.version
    said = alert_text(refused) if refused is not None else None
    caught = kept and said is not None and must_say in said
    return Outcome(
        _tried(report, armed),
        (
            (
                "alice",
                f"red banner: {said!r}; keeps version {after.version if after else '?'}"
                if said
                else "accepted it",
            ),
        ),
        caught,
    )


async def ghost(cast: Cast, op: OperatorLink) -> Outcome:
    return await _list_attack(cast, op, "ghost", "never signed")


async def rollback(cast: Cast, op: OperatorLink) -> Outcome:
    return await _list_attack(cast, op, "rollback", "rolled back by the relay")


async def hide_epoch(cast: Cast, op: OperatorLink) -> Outcome:
    if cast.restored is None:  # a restore first, so that the newest epoch is not the code's first
        cast.restored = await cast.new_device("Bob's laptop")
        await cast.restored.restore(code=cast.bob_code)
    armed = await op.command("hide_epoch", "bob")
    laptop = await cast.new_device("Bob's new phone")
    try:
        await laptop.restore(code=cast.bob_code)
        said, caught = "restored (it took the shortened history)", False
    except VerificationError as exc:
        said, caught = f"restore refused: {exc}", True
    except RelayError as exc:  # it took the shortened history; the relay refused what followed
        said, caught = f"took the shortened history (then: {exc})", False
    report = await op.report("hide_epoch", timeout=0)
    await op.command("stop", "bob")
    return Outcome(
        _tried(report, armed), (("bob's new phone", said),), caught and not laptop.is_member
    )


async def pairing(cast: Cast, op: OperatorLink) -> Outcome:
    tablet = await cast.new_device("Bob's tablet")
    since = len(cast.seen(tablet))
    armed = await op.command("pairing", "bob")
    await tablet.offer_pairing()
    try:
        desktop = await cast.bob.pairing_code(tablet.device_id, timeout=10)
    except (TimeoutError, VerificationError, LookupError, RelayError) as exc:
        desktop = f"no code ({exc or type(exc).__name__})"
    report = await op.report("pairing")
    shown = await _event(cast, tablet, since, PairingCodeShown)
    code = shown.code if isinstance(shown, PairingCodeShown) else None
    caught = code is not None and code != desktop
    if caught:
        await cast.bob.reject_device(tablet.device_id)
    return Outcome(
        _tried(report, armed),
        (
            ("bob's desktop", f"code {desktop}"),
            (
                "bob's tablet",
                f"code {code}: they differ, so Bob rejects it" if caught else f"code {code}",
            ),
        ),
        caught and not tablet.is_member,
    )


async def withhold(cast: Cast, op: OperatorLink) -> Outcome:
    text = "Are you coming tonight?"
    since = len(cast.seen(cast.alice))
    armed = await op.command("withhold", "bob", sender="alice")
    sent = await cast.alice.send_text("bob", text)
    report = await op.report("withhold")
    waiting = await _event(cast, cast.alice, since, DeliveryOverdue, message_id=sent.message_id)
    missing = text not in _readable(cast.bob)
    await op.command("release", "bob")
    arrived = await until(lambda: text in _readable(cast.bob))
    said = alert_text(waiting) if waiting is not None else None
    return Outcome(
        _tried(report, armed),
        (
            ("alice", f"{said!r}" if said else "shows it as sent, nothing more"),
            ("bob", "gets it once the relay lets go" if arrived else "never gets it"),
        ),
        said is not None and missing,
    )


async def reorder(cast: Cast, op: OperatorLink) -> Outcome:
    texts = ["First: the plan is off.", "Second: the plan is back on."]
    since = len(cast.seen(cast.bob))
    armed = await op.command("reorder", "bob", sender="alice")
    for text in texts:
        await cast.alice.send_text("bob", text)
    report = await op.report("reorder")
    caught_event = await _event(cast, cast.bob, since, OutOfOrderDelivery, sender_user="alice")
    await until(lambda: all(t in _readable(cast.bob) for t in texts))
    order = [m.body for m in cast.bob.messages("alice") if m.body in texts]
    lines = [m.body for m in cast.bob.messages("alice") if m.system]
    caught = caught_event is not None and order == texts
    return Outcome(
        _tried(report, armed),
        (
            (
                "bob",
                f"shows them in Alice's order, and: {lines[-1]!r}"
                if caught and lines
                else f"shows {order}",
            ),
        ),
        caught,
    )


ATTACKS: tuple[Attack, ...] = (
    Attack("read", "Read a message", "The relay copies what it carries: ciphertext only.", read),
    Attack("flip", "Flip bits", "The relay flips one bit of a queued message.", flip),
    Attack("replay", "Replay", "The relay delivers a message a second time.", replay),
    Attack(
        "relabel", "Relabel the sender", "The relay says Alice's message is mallory's.", relabel
    ),
    Attack("ghost", "Ghost device", "The relay adds a device of its own to Bob's list.", ghost),
    Attack("rollback", "Roll back a list", "The relay serves an older list of Bob's.", rollback),
    Attack(
        "hide_epoch",
        "Hide an epoch",
        "The relay hides Bob's newest epoch from a restore.",
        hide_epoch,
    ),
    Attack("pairing", "Pairing in the middle", "The relay swaps its keys into a pairing.", pairing),
    Attack(
        "withhold", "Withhold", "The relay holds a message back (nothing prevents it).", withhold
    ),
    Attack("reorder", "Reorder", "The relay delivers Alice's two messages swapped.", reorder),
)


async def run_attack(attack: Attack, cast: Cast, op: OperatorLink) -> Outcome:
    """One attack, then the relay disarmed (whatever it still holds given back)."""
    try:
        return await attack.run(cast, op)
    except (RelayError, TimeoutError, LookupError) as exc:
        return Outcome(f"the attack did not run to its end ({exc!r})", (), False)
    finally:
        await op.command("stop", "bob")


def table(outcomes: list[tuple[Attack, Outcome]]) -> list[str]:
    """The run as a Markdown table: attack → what the relay did → what the clients showed."""
    rows = [
        "| # | Attack | What the relay did | What the clients showed | Caught |",
        "|---|---|---|---|---|",
    ]
    for number, (attack, outcome) in enumerate(outcomes, start=1):
        answers = "; ".join(f"**{who}**: {what}" for who, what in outcome.answers)
        rows.append(
            f"| {number} | {attack.title} | {outcome.tried} | {answers.replace('|', '/')} |"
            f" {'yes' if outcome.caught else '**NOT CAUGHT**'} |"
        )
    return rows


async def run_headless(  # type: ignore[no-untyped-def]
    workdir: Path | None = None, out=print, only: tuple[str, ...] = ()
) -> int:
    """``ariadne chat-demo --hostile``: every attack (or those named in ``only``) in turn on the
    real relay; 1 if any was not caught."""
    root = Path(workdir or tempfile.mkdtemp(prefix="ariadne-hostile-"))
    outcomes: list[tuple[Attack, Outcome]] = []
    try:
        async with attacking_relay(root / "relay") as (url, op):
            out(f"Relay with its attack layer on at {url}. Alice and Bob start talking.\n")
            cast = await Cast.create(root, url)
            try:
                chosen = [a for a in ATTACKS if not only or a.key in only]
                for number, attack in enumerate(chosen, start=1):
                    out(f"{number:>2}. {attack.title}: {attack.explanation}")
                    outcome = await run_attack(attack, cast, op)
                    outcomes.append((attack, outcome))
                    out(f"    {'caught' if outcome.caught else 'NOT CAUGHT'}: {outcome.tried}")
            finally:
                await cast.close()
        out("")
        for row in table(outcomes):
            out(row)
        missed = [attack.title for attack, outcome in outcomes if not outcome.caught]
        out("\n" + ("Every attack was caught." if not missed else f"NOT caught: {missed}"))
        return 1 if missed else 0
    finally:
        if workdir is None:
            shutil.rmtree(root, ignore_errors=True)
