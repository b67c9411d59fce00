"""The PostgreSQL store's part in controls (PROTOCOL.md §10): an account deletes items of its own
mailbox (an unsent, deleted or expired message), as :class:`relay.store_controls.ControlStore`
does on SQLite. The trigger of schema step 4 (``relay.store_pg_schema``) keeps each thread's
count and the account's bytes right, whichever node deletes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class PgControls:
    _value: Callable[..., Any]  # relay.store_pg.PgRelayStore's runner, in its open transaction

    def delete_from_mailbox(
        self, username: str, thread_id: bytes, message_ids: list[bytes], through_ts: int | None
    ) -> int:
        """Delete the listed items of one thread (and, with ``through_ts``, every item up to that
        time) in one statement; returns how many went. Ids that are not there are no error."""
        deleted = self._value(
            "WITH gone AS (DELETE FROM mailbox WHERE username = $1 AND thread_id = $2"
            " AND (message_id = ANY($3::bytea[]) OR ts <= $4::bigint) RETURNING 1)"
            " SELECT count(*) FROM gone",
            username,
            thread_id,
            message_ids,
            through_ts,
        )
        return int(deleted)
