"""Versioned schema migrations for the relay's stores, applied when a relay starts.

Each backend has an ordered list of :class:`Step`: a version and the SQL that brings the
database from the previous version to it. The database records the version it is at (SQLite:
``PRAGMA user_version``; PostgreSQL: the ``schema_version`` table). A relay applies the steps
above that version in order, each in its own transaction, and refuses to open a database whose
version is newer than its own newest step: an older relay would not know what the newer one
stores, and writing to it could lose it.
"""

from __future__ import annotations

from typing import NamedTuple


class Step(NamedTuple):
    version: int
    sql: str


class SchemaTooNew(RuntimeError):
    """The database was written by a newer relay."""

    def __init__(self, found: int, known: int) -> None:
        super().__init__(
            f"the relay database is at schema version {found}, newer than this relay's {known}:"
            " run a relay at least as new as the one that wrote it"
        )
        self.found = found
        self.known = known


def pending(steps: list[Step], current: int) -> list[Step]:
    """The steps to apply to a database at ``current``, or :class:`SchemaTooNew`."""
    newest = steps[-1].version
    if current > newest:
        raise SchemaTooNew(current, newest)
    return [step for step in steps if step.version > current]
