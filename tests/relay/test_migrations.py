"""Schema migrations: a fresh database gets every step, an existing one only the steps above its
version, and a relay refuses a database written by a newer relay (and leaves it untouched)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from relay.migrations import SchemaTooNew, Step, pending
from relay.store import MIGRATIONS, RelayStore


def test_pending_steps_are_those_above_the_version() -> None:
    steps = [Step(1, "a"), Step(2, "b"), Step(3, "c")]
    assert pending(steps, 0) == steps
    assert pending(steps, 2) == [Step(3, "c")]
    assert pending(steps, 3) == []
    with pytest.raises(SchemaTooNew):
        pending(steps, 4)


def test_sqlite_store_migrates_a_fresh_file_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "relay.sqlite3"
    RelayStore(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == MIGRATIONS[-1].version
    RelayStore(path).close()  # at its version: nothing to apply


def test_sqlite_store_refuses_a_newer_database(tmp_path: Path) -> None:
    path = tmp_path / "relay.sqlite3"
    RelayStore(path).close()
    newer = MIGRATIONS[-1].version + 1
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version={newer}")
        db.execute("CREATE TABLE from_the_future (x)")
    with pytest.raises(SchemaTooNew) as refused:
        RelayStore(path)
    assert refused.value.found == newer
    with sqlite3.connect(path) as db:  # untouched
        assert db.execute("PRAGMA user_version").fetchone()[0] == newer
